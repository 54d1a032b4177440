"""Zero-shot evaluation, policy videos and the quickstart job."""

from equirl.evaluation.evaluate import (
    BodyResult,
    Policy,
    evaluate,
    format_table,
    load_policy_for_eval,
    write_csv,
    write_json,
    write_outputs,
)

__all__ = [
    "BodyResult",
    "Policy",
    "evaluate",
    "format_table",
    "load_policy_for_eval",
    "render_video",
    "write_csv",
    "write_json",
    "write_outputs",
]


def render_video(*args, **kwargs):
    """See equirl.evaluation.render.render_video (imported lazily: it needs MuJoCo's renderer)."""
    from equirl.evaluation.render import render_video as _render

    return _render(*args, **kwargs)
