"""Training agents (PPO, SAC) and what they share."""
