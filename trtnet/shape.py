"""Symbolic sizes: a dimension is an int or an `Expr` over named input dimensions ("N", "H", ...).

An `Expr` is kept in a canonical form (a constant plus integer multiples of terms, a term being a
symbol or an opaque product or floor division), so that shape rules written with plain arithmetic
(`(h + 2 * p - k) // s + 1`) simplify back to `H` where PyTorch's sizes would, and two equal sizes
compare equal. Unknown sizes never stop recording: checks apply where sizes are known.
"""
import math


class Expr:
    __slots__ = ("terms", "const", "_key")

    def __init__(self, terms, const=0):
        self.terms = tuple(sorted(((t, c) for t, c in terms if c), key=lambda tc: _order(tc[0])))
        self.const = int(const)
        self._key = (self.terms, self.const)

    @staticmethod
    def make(terms, const=0):
        e = Expr(terms, const)
        return e.const if not e.terms else e

    # arithmetic ---------------------------------------------------------------------------
    def _lin(self):
        return dict(self.terms), self.const

    def __add__(self, other):
        if not isinstance(other, (int, Expr)):
            return NotImplemented
        terms, const = self._lin()
        if isinstance(other, Expr):
            for t, c in other.terms:
                terms[t] = terms.get(t, 0) + c
            const += other.const
        else:
            const += other
        return Expr.make(terms.items(), const)

    __radd__ = __add__

    def __neg__(self):
        return Expr.make([(t, -c) for t, c in self.terms], -self.const)

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        if isinstance(other, int):
            return Expr.make([(t, c * other) for t, c in self.terms], self.const * other)
        if not isinstance(other, Expr):
            return NotImplemented
        a, b = sorted((self, other), key=str)
        return Expr.make([(("*", a, b), 1)])

    __rmul__ = __mul__

    def __floordiv__(self, k):
        if isinstance(k, int):
            if k == 1:
                return self
            if k > 0 and all(c % k == 0 for _, c in self.terms):
                # exact on the symbolic part: (k*a + c) // k == a + c // k
                return Expr.make([(t, c // k) for t, c in self.terms], self.const // k)
            # (x + q*k + r) // k == (x + r) // k + q, so equal sizes keep one form: (H - 2)//2 + 1 is H//2
            inner = Expr.make(self.terms, self.const % k)
            return Expr.make([(("//", inner, k), 1)], self.const // k)
        if isinstance(k, Expr):
            return Expr.make([(("//", self, k), 1)])
        return NotImplemented

    def __rfloordiv__(self, other):
        return Expr.make([(("//", other, self), 1)])

    def __mod__(self, k):
        return self - (self // k) * k

    def __eq__(self, other):
        return isinstance(other, Expr) and self._key == other._key

    def __hash__(self):
        return hash(self._key)

    def __bool__(self):
        return True

    def __index__(self):
        raise TypeError(f"the size '{self}' is not known until run time")

    def __str__(self):
        parts = []
        for t, c in self.terms:
            s = _term_str(t)
            s = s if isinstance(t, str) or abs(c) == 1 else f"({s})"
            parts.append((c < 0, s if abs(c) == 1 else f"{abs(c)}*{s}"))
        if self.const:
            parts.append((self.const < 0, str(abs(self.const))))
        out = ("-" if parts[0][0] else "") + parts[0][1]
        for neg, s in parts[1:]:
            out += f" {'-' if neg else '+'} {s}"
        return out

    __repr__ = __str__

    def symbols(self):
        out = set()
        for t, _ in self.terms:
            out |= _term_symbols(t)
        return out

    def eval(self, env):
        return self.const + sum(c * _term_eval(t, env) for t, c in self.terms)


def sym(name):
    return Expr([(name, 1)])


def _order(t):
    return (0, t) if isinstance(t, str) else (1, _term_str(t))


def _term_str(t):
    if isinstance(t, str):
        return t
    op, a, b = t
    wrap = [f"({v})" if isinstance(v, Expr) and (len(v.terms) > 1 or v.const) else str(v) for v in (a, b)]
    return f"{wrap[0]}{op}{wrap[1]}"


def _term_symbols(t):
    if isinstance(t, str):
        return {t}
    return set().union(*(v.symbols() for v in t[1:] if isinstance(v, Expr)))


def _term_eval(t, env):
    if isinstance(t, str):
        if t not in env:
            raise KeyError(t)
        return int(env[t])
    op, a, b = t
    a, b = (evaluate(v, env) for v in (a, b))
    return a * b if op == "*" else a // b


def evaluate(d, env):
    """The size `d` takes when the named dimensions have the values in `env`."""
    return d.eval(env) if isinstance(d, Expr) else int(d)


def is_static(d):
    return not isinstance(d, Expr)


def fmt_dim(d):
    return str(d)


def fmt_shape(shape):
    return "(" + ", ".join(map(fmt_dim, shape)) + ("," if len(shape) == 1 else "") + ")"


def numel(shape):
    out = 1
    for d in shape:
        out = out * d
    return out


def same(a, b):
    """True when the sizes are known to be equal, False when known to differ, None when unknown."""
    if isinstance(a, Expr) or isinstance(b, Expr):
        d = a - b
        return True if d == 0 else (False if isinstance(d, int) else None)
    return a == b


def ceil_div(a, b):
    return -((-a) // b)


def prod_static(shape):
    return math.prod(d for d in shape if is_static(d))
