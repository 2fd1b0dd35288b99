"""Neural-network layers and losses with hand-written backward passes, and a small MLP built from them.

One module per chapter; import every name from here (``from gradlab import layers``):

- :mod:`gradlab.layers.dense` (chapter 07): linear, ReLU/sigmoid/tanh, MSE, BCE-with-logits,
  softmax cross-entropy, the L2 penalty and the MLP;
- :mod:`gradlab.layers.norms` (chapter 10): layer norm, batch norm (training and evaluation),
  embedding;
- :mod:`gradlab.layers.attention` (chapter 11): scaled dot-product attention with batch, heads and
  masks, and the softmax VJP.

One convention for every layer
------------------------------
* **Batch first.** A batch of ``N`` examples with ``D`` features is a tensor of shape ``(N, D)``;
  layer norm takes any ``(..., D)`` and attention ``(*, T, d)`` with batch and head dimensions first.
* **A layer** is a pair of functions. ``<layer>_forward(x, *params)`` returns ``(out, cache)``:
  ``cache`` holds exactly what the backward pass needs. ``<layer>_backward(dout, cache)`` takes
  ``dout`` = dL/d(out), the upstream gradient with the shape of ``out``, and returns
  ``(dx, grads)``: dL/dx with the shape of ``x``, and a dict of parameter gradients keyed like the
  parameters (``{"W": dW, "b": db}`` for :func:`linear_forward`; ``{}`` for an activation).
* **A loss** ends the graph: ``<loss>_forward(prediction, target)`` returns ``(loss, cache)``, a
  0-dim tensor averaged over the batch (over every element for MSE and BCE), and
  ``<loss>_backward(cache)`` returns dL/d(prediction). The upstream gradient of a loss is 1.
  :func:`l2_penalty_forward` follows the same pattern for a penalty on one weight tensor.
* **One dtype.** The tensors a layer, a loss or the MLP takes share one floating dtype (labels
  excepted), and so does the upstream gradient; mixing them raises a ``TypeError`` that names them.
* **The MLP** uses the same shape of API: :func:`mlp_forward` returns ``(logits, cache)`` and
  :func:`mlp_backward` returns ``(dx, grads)`` with one gradient per parameter, keyed like the
  parameter dict (``"W1"``, ``"b1"``, ``"W2"``, ...).
* **Checked, then done.** Every argument is checked before anything changes (running statistics),
  and each error names the function, the argument, its shape or dtype, and what to do.

Forward functions are ordinary PyTorch code, so autograd can differentiate them too (that is how the
tests check the backward functions). Backward functions run under ``torch.no_grad()`` and return
plain tensors. Caches are dicts; pass each one, unchanged, to the backward of the layer that made it.
A cache remembers the version counter of every tensor it holds, and the backward function refuses a
cache whose tensors were changed in place since (``gamma.mul_(2)`` after the forward pass), as
PyTorch's autograd refuses it: the gradient would be silently wrong.
"""
from .attention import attention_backward, attention_forward, softmax_backward
from .dense import (ACTIVATIONS, bce_with_logits_backward, bce_with_logits_forward, init_mlp, l2_penalty_backward,
                    l2_penalty_forward, linear_backward, linear_forward, mlp_backward, mlp_forward,
                    mlp_loss_and_grads, mse_backward, mse_forward, relu_backward, relu_forward, sigmoid_backward,
                    sigmoid_forward, softmax_cross_entropy_backward, softmax_cross_entropy_forward,
                    tanh_backward, tanh_forward)
from .norms import (batch_norm_backward, batch_norm_forward, embedding_backward, embedding_forward,
                    layer_norm_backward, layer_norm_forward)

from . import attention as _attention, dense as _dense, norms as _norms

# Every public name of the three chapter modules (07 dense, 10 norms, 11 attention), in that order.
__all__ = [*_dense.__all__, *_norms.__all__, *_attention.__all__]
