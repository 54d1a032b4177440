"""Run machinery shared by every kind of training: directories, checkpoints and logs."""
