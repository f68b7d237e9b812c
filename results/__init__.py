"""Results stage: reading an experiment back as a leaderboard, best checkpoints and plots."""
