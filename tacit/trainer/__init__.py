"""Training: the loop, evaluation, the promotion gate, the Ray job, the schedule, the user-diversity study."""
