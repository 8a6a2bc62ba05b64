"""End-to-end examples around zoo networks that carry real trained weights (`python -m trtnet.examples.mtcnn`,
`python -m trtnet.examples.vad`).

Each network runs as a TensorRT engine where one can execute; elsewhere (no GPU, or a GPU the installed TensorRT
does not support) trtnet.check's CPU interpreter runs the very TensorRT network the engine would be built from,
and `Runner.backend` says which of the two ran.
"""
import numpy as np


class Runner:
    """A zoo model with its package's weights (or `weights`, a WeightMap), run by its engine (built here, or the
    `engine` file) or by the interpreter on its TensorRT network."""

    def __init__(self, name, shape=None, profiles=None, transform=None, weights=None, engine=None):
        from .. import harness, zoo
        from ..engine import build_engine, create_network
        from ..runtime import Engine, execution_unavailable
        from ..weights import WeightMap
        spec = zoo.get(name)
        self.graph = spec.graph(weights if weights is not None else WeightMap(harness.export_state(name)), shape)
        self.graph = transform(self.graph) if transform else self.graph   # e.g. quantized
        self.batch = self.graph.ranges.get("N", (1, 8, 32))[2]
        reason = execution_unavailable()
        self.engine = self.network = None
        if reason is None:
            self.engine = Engine(engine or build_engine(self.graph, profiles, progress=False)[0])
            self.backend = "TensorRT engine"
        else:
            self._emitted = create_network(self.graph)   # keeps the builder and the weight arrays alive
            self.network = self._emitted[1]
            self.backend = f"trtnet.check's CPU interpreter on the TensorRT network (no engine can run here: {reason})"

    def __call__(self, **inputs):
        """{output name: array} for a non-empty batch, fed in pieces of at most the profile's largest batch."""
        n = len(next(iter(inputs.values())))
        parts = [self._run({k: np.ascontiguousarray(v[i:i + self.batch]) for k, v in inputs.items()})
                 for i in range(0, n, self.batch)]
        if len(parts) > 1 and any(np.ndim(v) == 0 for v in parts[0].values()):
            raise ValueError(f"'{self.graph.name}' has outputs for the whole batch (an NMS layer's rows and count): "
                             f"give it at most {self.batch} images at a time")
        return parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _run(self, inputs):
        if self.engine is not None:
            return self.engine(**inputs)
        from ..check.interp import run_network
        return run_network(self.network, inputs)
