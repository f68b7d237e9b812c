"""Ensemble stage: RLE, submission CSVs, validation, evaluation, voting and the build command."""
