"""Backpropagation through time, by hand, for the tanh recurrence h_t = tanh(h_{t-1} Wh + x_t Wx + b).

Shapes follow the book's notation: batches are rows and a weight is (D_in, D_out), as in CS231n's
``rnn_step_forward`` (B = batch, T = time steps, I = input size, H = hidden size):

======  ===========  ============================================
name    shape        meaning
======  ===========  ============================================
xs      (B, T, I)    inputs x_1 .. x_T
h0      (B, H)       initial state
Wx      (I, H)       input-to-state weight
Wh      (H, H)       state-to-state weight
b       (H,)         bias
states  (B, T, H)    h_1 .. h_T (``states[:, t - 1]`` is h_t)
======  ===========  ============================================

One step reads ``h_t = tanh(h_{t-1} @ Wh + x_t @ Wx + b)``. ``torch.nn.RNN`` computes the same
with its weights stored transposed: ``weight_ih_l0`` is ``Wx.T`` and ``weight_hh_l0`` is ``Wh.T``
(and it has two biases, whose sum is b).

:func:`rnn_forward` runs the recurrence and keeps what the backward pass needs (no autograd graph
is recorded). :func:`rnn_backward` takes the gradient of a loss with respect to the states (on
every state, on the last one, or both) and walks the steps in reverse: it returns the gradients
for xs, h0, Wx, Wh and b, and the total gradient reaching every state, whose per-step norms show
vanishing or exploding gradients. ``truncation=k`` gives truncated BPTT: the gradient does not
flow back through the states h_k, h_2k, ..., exactly as if each of them were ``detach()``-ed
before entering the next step of one recorded graph. :func:`train_truncated_by_hand` trains the
recurrence the other way truncated BPTT is used, one backward pass and one SGD step per chunk,
with these hand-written gradients: the reference for chapter 06's ``train_truncated`` exercise.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ._printed import format_shape
from ._validate import is_integer, require_float_tensor, shape_str

__all__ = ["RNNTrace", "RNNGrads", "rnn_forward", "rnn_backward", "train_truncated_by_hand"]


@dataclass(frozen=True)
class RNNTrace:
    """What :func:`rnn_forward` computed: the inputs it used and the states h_1 .. h_T.

    All tensors are detached. ``states`` has shape (B, T, H); ``last`` is h_T, shape (B, H).
    """

    xs: torch.Tensor
    h0: torch.Tensor
    Wx: torch.Tensor
    Wh: torch.Tensor
    b: torch.Tensor
    states: torch.Tensor

    @property
    def last(self) -> torch.Tensor:
        """h_T, shape (B, H)."""
        return self.states[:, -1]

    @property
    def steps(self) -> int:
        """T, the number of time steps."""
        return self.states.shape[1]


@dataclass(frozen=True)
class RNNGrads:
    """Gradients returned by :func:`rnn_backward`.

    ``xs`` (B, T, I), ``h0`` (B, H), ``Wx`` (I, H), ``Wh`` (H, H), ``b`` (H,): gradients of the loss
    with respect to the inputs, the initial state and the parameters. ``states`` (B, T, H): the total
    gradient reaching each state h_t (its own term from the loss plus what flows back from later
    steps), the same as ``h_t.grad`` after ``h_t.retain_grad()`` in autograd.
    """

    xs: torch.Tensor
    h0: torch.Tensor
    Wx: torch.Tensor
    Wh: torch.Tensor
    b: torch.Tensor
    states: torch.Tensor

    @property
    def step_norms(self) -> torch.Tensor:
        """Norm of the gradient reaching each state, ||dL/dh_t|| over batch and hidden units: shape (T,)."""
        return torch.linalg.vector_norm(self.states, dim=(0, 2))

    def parameters(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(Wx, Wh, b): the gradients of the trainable weights, in that order."""
        return self.Wx, self.Wh, self.b


def _check_inputs(xs, h0, Wx, Wh, b) -> None:
    named = {"xs": xs, "h0": h0, "Wx": Wx, "Wh": Wh, "b": b}
    for name, t in named.items():
        require_float_tensor(t, f"rnn_forward: {name}")
    dtypes = {t.dtype for t in named.values()}
    if len(dtypes) > 1:
        listing = ", ".join(f"{n} {t.dtype}" for n, t in named.items())
        raise TypeError(f"rnn_forward: all tensors must share one dtype, got {listing}. "
                        f"Convert them, e.g. with .double() on each.")
    if xs.dim() != 3:
        hint = (" For a single sequence, add a batch dimension: xs.unsqueeze(0)." if xs.dim() == 2 else "")
        raise ValueError(f"rnn_forward: xs must have shape (B, T, I) (batch first), got {shape_str(xs)}.{hint}")
    B, T, I = xs.shape
    if T < 1:
        raise ValueError(f"rnn_forward: xs has shape {shape_str(xs)}, i.e. T = 0 time steps; "
                         f"the recurrence needs at least one step.")
    if Wh.dim() != 2 or Wh.shape[0] != Wh.shape[1]:
        raise ValueError(f"rnn_forward: Wh must be square, shape (H, H), got {shape_str(Wh)}.")
    H = Wh.shape[0]
    if h0.shape != (B, H):
        hint = (" For a single sequence, add a batch dimension: h0.unsqueeze(0)." if h0.shape == (H,) else "")
        raise ValueError(f"rnn_forward: h0 must have shape (B, H) = ({B}, {H}) to match xs {shape_str(xs)} "
                         f"and Wh {shape_str(Wh)}, got {shape_str(h0)}.{hint}")
    if Wx.shape != (I, H):
        hint = (" It looks transposed: this is nn.RNN's weight_ih_l0 layout; pass its .T."
                if Wx.shape == (H, I) else "")
        raise ValueError(f"rnn_forward: Wx must have shape (I, H) = ({I}, {H}) to match xs {shape_str(xs)} "
                         f"and Wh {shape_str(Wh)}, got {shape_str(Wx)}.{hint}")
    if b.shape != (H,):
        raise ValueError(f"rnn_forward: b must have shape (H,) = ({H},) to match Wh {shape_str(Wh)}, "
                         f"got {shape_str(b)}.")


def rnn_forward(xs: torch.Tensor, h0: torch.Tensor, Wx: torch.Tensor, Wh: torch.Tensor,
                b: torch.Tensor) -> RNNTrace:
    """Run h_t = tanh(h_{t-1} @ Wh + x_t @ Wx + b) for t = 1 .. T; return an :class:`RNNTrace`.

    Shapes: xs (B, T, I), h0 (B, H), Wx (I, H), Wh (H, H), b (H,), all of one floating dtype.
    Nothing is recorded for autograd: this is the forward half of the hand-written pass.
    """
    _check_inputs(xs, h0, Wx, Wh, b)
    xs, h0, Wx, Wh, b = (t.detach() for t in (xs, h0, Wx, Wh, b))
    with torch.no_grad():
        h = h0
        states = []
        for t in range(xs.shape[1]):
            h = torch.tanh(h @ Wh + xs[:, t] @ Wx + b)
            states.append(h)
        return RNNTrace(xs, h0, Wx, Wh, b, torch.stack(states, dim=1))


def rnn_backward(trace: RNNTrace, grad_states: torch.Tensor | None = None, *,
                 grad_last: torch.Tensor | None = None, truncation: int | None = None) -> RNNGrads:
    """Backpropagation through time for the run recorded in ``trace``; returns :class:`RNNGrads`.

    ``grad_states`` (B, T, H): the loss's own gradient with respect to each state h_t (a loss on
    every state). ``grad_last`` (B, H): its gradient with respect to h_T (a loss on the last state).
    Give either or both (they add). ``truncation=k`` (a positive int) stops the gradient from
    flowing back out of the states h_k, h_2k, ... into earlier steps, as ``h = h.detach()`` after
    every k-th step of one recorded autograd loop would; ``None`` is full BPTT.
    """
    if not isinstance(trace, RNNTrace):
        raise TypeError(f"rnn_backward: trace must be the RNNTrace returned by rnn_forward, "
                        f"got {type(trace).__name__}.")
    states = trace.states
    B, T, H = states.shape
    if grad_states is None and grad_last is None:
        raise ValueError("rnn_backward: pass grad_states (B, T, H) for a loss on every state, "
                         "grad_last (B, H) for a loss on the last state, or both.")
    if truncation is not None and (not is_integer(truncation) or truncation < 1):
        raise ValueError(f"rnn_backward: truncation must be a positive int (the number of steps the "
                         f"gradient may travel back) or None for full BPTT, got {truncation!r}.")
    truncation = None if truncation is None else int(truncation)   # np.int64 is an int too
    upstream = torch.zeros_like(states)
    for name, g, shape, what in (("grad_states", grad_states, (B, T, H), "(B, T, H), like trace.states"),
                                 ("grad_last", grad_last, (B, H), "(B, H), like trace.last")):
        if g is None:
            continue
        require_float_tensor(g, f"rnn_backward: {name}")
        if g.shape != shape:
            raise ValueError(f"rnn_backward: {name} must have shape {what} = {format_shape(shape)}, "
                             f"got {shape_str(g)}.")
        if g.dtype != states.dtype:
            raise TypeError(f"rnn_backward: {name} has dtype {g.dtype} but the trace has {states.dtype}; "
                            f"convert it with .to({states.dtype}).")
    if grad_states is not None:
        upstream += grad_states.detach()
    if grad_last is not None:
        upstream[:, -1] += grad_last.detach()

    Wx, Wh, xs = trace.Wx, trace.Wh, trace.xs
    dWx, dWh = torch.zeros_like(Wx), torch.zeros_like(Wh)
    db = torch.zeros_like(trace.b)
    dxs = torch.empty_like(xs)
    dstates = torch.empty_like(states)
    carry = torch.zeros_like(trace.h0)          # gradient flowing into h_t from step t + 1
    with torch.no_grad():
        for t in range(T, 0, -1):               # t = T .. 1; states[:, t - 1] is h_t
            if truncation is not None and t % truncation == 0 and t < T:
                carry = torch.zeros_like(carry)  # h_t was cut off from the steps after it
            dh = upstream[:, t - 1] + carry
            dstates[:, t - 1] = dh
            h_t = states[:, t - 1]
            h_prev = states[:, t - 2] if t > 1 else trace.h0
            da = dh * (1 - h_t * h_t)            # through tanh: tanh'(a) = 1 - tanh(a)^2
            dWx += xs[:, t - 1].T @ da
            dWh += h_prev.T @ da
            db += da.sum(dim=0)
            dxs[:, t - 1] = da @ Wx.T
            carry = da @ Wh.T
    return RNNGrads(dxs, carry, dWx, dWh, db, dstates)


def train_truncated_by_hand(xs: torch.Tensor, ys: torch.Tensor, Wx: torch.Tensor, Wh: torch.Tensor,
                            b: torch.Tensor, k: int, lr: float, max_norm: float) -> dict:
    """Truncated-BPTT training with hand-written gradients: a backward pass and an SGD step per chunk.

    The state starts at h_0 = 0 and runs through chunks of ``k`` steps (the last may be shorter).
    Each chunk's loss is ``((states - ys[:, chunk]) ** 2).mean()``; its gradient for (Wx, Wh, b) is
    computed by :func:`rnn_backward` on that chunk alone (the carried state is a constant, as after
    ``detach()``), scaled as ``torch.nn.utils.clip_grad_norm_(params, max_norm)`` scales it (by
    ``min(1, max_norm / (total_norm + 1e-6))``), then ``W -= lr * grad``. Returns a dict: ``losses``
    (one per chunk, before that chunk's step) and the trained ``Wx``, ``Wh``, ``b``. The inputs are
    not modified.
    """
    _check_inputs(xs, torch.zeros(xs.shape[0], Wh.shape[-1], dtype=xs.dtype), Wx, Wh, b)
    require_float_tensor(ys, "train_truncated_by_hand: ys")
    B, T, _ = xs.shape
    H = Wh.shape[0]
    if ys.shape != (B, T, H):
        raise ValueError(f"train_truncated_by_hand: ys must have shape (B, T, H) = {format_shape((B, T, H))}, "
                         f"got {shape_str(ys)}.")
    if not is_integer(k) or k < 1:
        raise ValueError(f"train_truncated_by_hand: k must be a positive int (steps per chunk), got {k!r}.")
    k = int(k)
    Wx, Wh, b = (t.detach().clone() for t in (Wx, Wh, b))
    h = torch.zeros(B, H, dtype=xs.dtype)
    losses = []
    for start in range(0, T, k):
        trace = rnn_forward(xs[:, start:start + k], h, Wx, Wh, b)
        diff = trace.states - ys[:, start:start + k].detach()
        losses.append((diff ** 2).mean())
        grads = rnn_backward(trace, 2 * diff / diff.numel())
        total = torch.sqrt(sum((g ** 2).sum() for g in grads.parameters()))
        factor = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for p, g in zip((Wx, Wh, b), grads.parameters()):
            p -= lr * (factor * g)
        h = trace.last
    return {"losses": torch.stack(losses), "Wx": Wx, "Wh": Wh, "b": b}
