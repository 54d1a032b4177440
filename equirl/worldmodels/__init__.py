"""World models of the locomotion environments: data, observer flows, models, training, metrics.

    from equirl.worldmodels import WorldModelConfig, make_world_model, rollout

The shared types and the model interface are in `equirl.worldmodels.interface`
(read its docstring first); moving observers in flows.py. Models: fernn.py (flow-equivariant RNN and its
static V = {0} version), gru.py (baseline), invariant_latent.py, remul.py.
Data: data.py (collect trajectories to npz shards, windows, flows on the
fly). Training: config.py, train.py (run directories, orbax checkpoints,
tensorboardX, metrics.csv). Metrics: metrics.py, evaluate.py. Command line:
cli.py (`equirl wm collect | train | eval`). A trained model as an
environment: imagined_env.py.
"""

from equirl.worldmodels.flows import (
    ObserverFlow,
    apply_flow,
    apply_flow_to_frames,
    flow_element,
    flow_elements,
    horizontal,
)
from equirl.worldmodels.interface import (
    BUILDERS,
    KINDS,
    FeatureStats,
    Frame,
    Sequence,
    WorldModel,
    WorldModelConfig,
    act_on_frame,
    act_on_sequence,
    copy_static,
    make_world_model,
    normalized_error,
    rollout,
)

__all__ = [
    "BUILDERS",
    "KINDS",
    "FeatureStats",
    "Frame",
    "ObserverFlow",
    "Sequence",
    "WorldModel",
    "WorldModelConfig",
    "act_on_frame",
    "act_on_sequence",
    "apply_flow",
    "apply_flow_to_frames",
    "copy_static",
    "flow_element",
    "flow_elements",
    "horizontal",
    "make_world_model",
    "normalized_error",
    "rollout",
]
