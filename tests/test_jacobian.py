"""gradlab.jacobian: full Jacobians row by row (VJPs) and column by column (JVPs), against torch's own."""
from __future__ import annotations

import pytest
import torch

from gradlab.jacobian import jacobian_by_columns, jacobian_by_rows

BUILDERS = [jacobian_by_rows, jacobian_by_columns]

# torch.func's forward mode scripts its decompositions on first use, which warns inside torch itself.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


_A = torch.randn(4, 3, generator=_gen(1), dtype=torch.float64)
_B = torch.randn(5, 6, generator=_gen(2), dtype=torch.float64)

# (name, f, x): vectors, matrices, scalars, m < n, m > n, m = n, couplings between elements.
CASES = [
    ("elementwise sin", torch.sin, torch.randn(5, generator=_gen(3), dtype=torch.float64)),
    ("matrix-vector R^3 -> R^4", lambda x: _A @ x, torch.randn(3, generator=_gen(4), dtype=torch.float64)),
    ("tanh layer R^3 -> R^4", lambda x: torch.tanh(_A @ x) * x.sum(), torch.randn(3, generator=_gen(5), dtype=torch.float64)),
    ("scalar output (a loss)", lambda x: (x ** 2).sum(), torch.randn(6, generator=_gen(6), dtype=torch.float64)),
    ("scalar input", lambda x: torch.stack([x, x ** 2, torch.exp(x)]), torch.tensor(0.7, dtype=torch.float64)),
    ("scalar to scalar", lambda x: x ** 3, torch.tensor(-1.5, dtype=torch.float64)),
    ("matrix in, vector out", lambda X: (_B @ X.T).sum(0), torch.randn(2, 6, generator=_gen(7), dtype=torch.float64)),
    ("matrix in, matrix out", lambda X: torch.softmax(X, dim=1), torch.randn(2, 3, generator=_gen(8), dtype=torch.float64)),
    ("vector in, 3-d out", lambda x: torch.outer(x, x).reshape(2, 2, 4) * 0.5, torch.randn(4, generator=_gen(9), dtype=torch.float64)),
    ("float32", lambda x: torch.cumsum(x * x, 0), torch.randn(4, generator=_gen(10))),
]



@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
@pytest.mark.parametrize("name,f,x", CASES, ids=[c[0] for c in CASES])
def test_matches_torch_functional_jacobian_and_jacrev(build, name, f, x):
    m, n = f(x).numel(), x.numel()
    J = build(f, x)
    assert J.shape == (m, n)
    assert J.dtype == x.dtype
    expected = torch.autograd.functional.jacobian(f, x).reshape(m, n)
    torch.testing.assert_close(J, expected)
    torch.testing.assert_close(J, torch.func.jacrev(f)(x).reshape(m, n))
    torch.testing.assert_close(J, torch.func.jacfwd(f)(x).reshape(m, n))


def test_layout_rows_are_outputs_columns_are_inputs():
    # y = (x0 * x1, x0 ** 2, 3 * x1 ** 2) at (2, 3): J = [[3, 2], [4, 0], [0, 18]].
    f = lambda x: torch.stack([x[0] * x[1], x[0] ** 2, 3 * x[1] ** 2])  # noqa: E731
    x = torch.tensor([2.0, 3.0])
    expected = torch.tensor([[3.0, 2.0], [4.0, 0.0], [0.0, 18.0]])
    for build in BUILDERS:
        assert torch.equal(build(f, x), expected)


def test_reshape_gives_torch_layout_for_non_vector_shapes():
    f = lambda X: X.sum(1) * X[:, :1].T  # (2, 3) -> (1, 2)  # noqa: E731
    X = torch.randn(2, 3, generator=_gen(11), dtype=torch.float64)
    for build in BUILDERS:
        J = build(f, X)
        assert J.shape == (2, 6)
        torch.testing.assert_close(J.reshape(1, 2, 2, 3), torch.autograd.functional.jacobian(f, X))


def test_rows_are_vector_jacobian_products():
    f = lambda x: torch.tanh(_A @ x)  # noqa: E731
    x = torch.randn(3, generator=_gen(12), dtype=torch.float64)
    v = torch.randn(4, generator=_gen(13), dtype=torch.float64)
    _, vjp_fn = torch.func.vjp(f, x)
    _, jvp_out = torch.func.jvp(f, (x,), (v[:3],))
    J = jacobian_by_rows(f, x)
    torch.testing.assert_close(v @ J, vjp_fn(v)[0])
    torch.testing.assert_close(jacobian_by_columns(f, x) @ v[:3], jvp_out)


def test_output_independent_of_x_gives_zeros_like_torch():
    x = torch.randn(3, generator=_gen(14))
    constant = lambda x: torch.ones(2)  # noqa: E731
    partly = lambda x: torch.stack([x[0] * 0 + 5.0, torch.tensor(1.0)])  # second output ignores x
    for build in BUILDERS:
        assert torch.equal(build(constant, x), torch.zeros(2, 3))
        assert torch.equal(build(partly, x), torch.zeros(2, 3))


def test_empty_input_and_output():
    for build in BUILDERS:
        assert build(torch.sin, torch.zeros(0)).shape == (0, 0)
        assert build(lambda x: x[:0], torch.ones(3)).shape == (0, 3)
        assert build(lambda x: torch.ones(2) * x.sum(), torch.zeros(0)).shape == (2, 0)


def test_input_tensor_and_its_grad_are_untouched():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    before = x.detach().clone()
    for build in BUILDERS:
        build(lambda t: t ** 2, x)
    assert x.grad is None
    assert torch.equal(x.detach(), before)
    # a non-leaf with history is fine too: it is detached first
    h = x * 3
    for build in BUILDERS:
        torch.testing.assert_close(build(lambda t: t ** 2, h), torch.diag(2 * h.detach()))
    assert x.grad is None


def test_mixed_dtypes_promote():
    x = torch.tensor([1.0, 2.0])  # float32 input, float64 output
    f = lambda t: t.double() ** 2  # noqa: E731
    for build in BUILDERS:
        J = build(f, x)
        assert J.dtype == torch.float64
        torch.testing.assert_close(J, torch.diag(torch.tensor([2.0, 4.0], dtype=torch.float64)))


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_works_under_no_grad_and_inference_mode(build):
    x = torch.tensor([1.0, -2.0])
    expected = torch.diag(torch.exp(x))
    with torch.no_grad():
        torch.testing.assert_close(build(torch.exp, x), expected)
    with torch.inference_mode():
        x_inf = torch.tensor([1.0, -2.0])        # an inference tensor
        torch.testing.assert_close(build(torch.exp, x_inf), expected)


# ---- errors: each names the argument, what was received, and what to do ----

@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_f_not_callable(build):
    with pytest.raises(TypeError, match=rf"{build.__name__}: f must be a function of one tensor, got Tensor"):
        build(torch.ones(2), torch.ones(2))


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
@pytest.mark.parametrize("x", [[1.0, 2.0], 3.0, None], ids=["list", "float", "None"])
def test_x_not_a_tensor(build, x):
    with pytest.raises(TypeError, match=rf"{build.__name__}: x must be a torch.Tensor, got .*torch.tensor\(\.\.\.\)"):
        build(torch.sin, x)


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_x_integer(build):
    with pytest.raises(TypeError, match=rf"{build.__name__}: x of shape \(2,\) has dtype torch.int64.*float dtype"):
        build(torch.sin, torch.tensor([1, 2]))


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_x_complex(build):
    with pytest.raises(TypeError, match=rf"{build.__name__}: x of shape \(2,\) is complex"):
        build(torch.sin, torch.ones(2, dtype=torch.complex64))


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
@pytest.mark.parametrize("f,got", [(lambda x: x.sum().item(), "float"),
                                   (lambda x: [x[0], x[1]], "list"),
                                   (lambda x: x.tolist(), "list"),
                                   (lambda x: None, "NoneType")],
                         ids=["item", "list of tensors", "tolist", "None"])
def test_f_returns_non_tensor(build, f, got):
    with pytest.raises(TypeError, match=rf"{build.__name__}: the value returned by f must be a torch.Tensor, "
                                        rf"got {got} \(for x of shape \(2,\)\).*torch.stack"):
        build(f, torch.ones(2))


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_f_returns_integer_tensor(build):
    with pytest.raises(TypeError, match=rf"{build.__name__}: the value returned by f has dtype torch.int64 "
                                        r"\(shape \(\)\), which has no derivative"):
        build(lambda x: x.argmax(), torch.tensor([1.0, 3.0, 2.0]))


def test_columns_f_changing_shape():
    calls = []

    def unstable(x):
        calls.append(1)
        return x if len(calls) == 1 else torch.cat([x, x])

    with pytest.raises(ValueError, match=r"jacobian_by_columns: f returned shape \(2,\) at first but \(4,\) "
                                         r"during forward sweep 0.*pure function"):
        jacobian_by_columns(unstable, torch.ones(2))


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_f_working_in_place_is_evaluated_at_x(build):
    # f squares its argument in place: if f received x itself, later sweeps would see x**2, x**4, ...
    x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    J = build(lambda v: v.pow_(2), x)
    torch.testing.assert_close(J, torch.diag(2 * x))
    assert x.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_non_contiguous_x(build, dtype):
    X = torch.randn(3, 2, generator=_gen(15), dtype=dtype).T     # (2, 3), transposed
    f = lambda X: torch.softmax(X, dim=1) * X.sum()  # noqa: E731
    J = build(f, X)
    assert J.dtype == dtype
    torch.testing.assert_close(J, torch.func.jacrev(f)(X).reshape(6, 6))
