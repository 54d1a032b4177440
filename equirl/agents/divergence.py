"""Stop a run that diverges instead of training on garbage.

Two signals, both read from the log rows the driver writes anyway:
- any `loss/*` that is not finite stops the run at once;
- the Q bias, `q/bias` = the critic's mean Q on replay batches minus the mean
  discounted Monte-Carlo return of the states of the episodes finished in
  the same window (`equirl.agents.offpolicy`), above `max_q_bias` for
  `window` environment steps in a row. An overestimating critic (the classic
  off-policy failure) shows as a bias that grows without bound, while an
  honest one stays within a fraction of the return. Episodes cut by the time
  limit make the Monte-Carlo figure a little low (their tails are not
  bootstrapped), so the bound is generous.
"""

from __future__ import annotations

import math

from equirl.errors import TrainingDiverged


def add_q_bias(row: dict[str, float]) -> None:
    """Turn the window's Monte-Carlo sums into `q/mc_return` and `q/bias` (in place)."""
    mc_sum, episodes = row.pop("q/mc_sum", None), row.pop("q/mc_episodes", None)
    if mc_sum is None or not episodes:
        return
    row["q/mc_return"] = mc_sum / episodes
    if row.get("optim/learning", 0.0) >= 1.0 and "q/mean" in row:
        row["q/bias"] = row["q/mean"] - row["q/mc_return"]


# Log columns the off-policy learners add (the first log row may lack them: no learning yet).
Q_BIAS_COLUMNS = ("q/mc_return", "q/bias")


class DivergenceGuard:
    """check(row, env_steps) raises TrainingDiverged naming the step and the figure;
    `suspect` is true while the Q bias is over its bound (the driver saves no checkpoint then)."""

    def __init__(self, max_q_bias: float, window: int):
        self.max_q_bias = max_q_bias
        self.window = window
        self.over_since: int | None = None  # first step of the current run of rows over the bound

    @property
    def suspect(self) -> bool:
        return self.over_since is not None

    def check(self, row: dict[str, float], env_steps: int) -> None:
        for key, value in row.items():
            if key.startswith(("loss/", "q/mean")) and not math.isfinite(value):
                raise TrainingDiverged(f"at {env_steps} environment steps {key} = {value} is not finite")
        bias = row.get("q/bias")
        if not self.max_q_bias or bias is None:
            return
        if bias <= self.max_q_bias:
            self.over_since = None
            return
        if self.over_since is None:
            self.over_since = env_steps
        if env_steps - self.over_since >= self.window:
            raise TrainingDiverged(
                f"at {env_steps} environment steps the critic's Q bias is {bias:.1f} (mean Q {row['q/mean']:.1f}, "
                f"Monte-Carlo return {row['q/mc_return']:.1f}), above run.max_q_bias={self.max_q_bias:g} "
                f"since {self.over_since} steps"
            )
