"""The files the search writes beside Tune's: here, the Optuna study database."""

from __future__ import annotations

import optuna

from search import experiment_files as files


def test_study_storage_is_complete_on_disk(tmp_path):
    storage = files.create_study_storage(tmp_path)
    optuna.create_study(study_name=tmp_path.name, storage=storage, direction="maximize")

    assert (tmp_path / files.STUDY_FILE).is_file()
    assert [path.name for path in tmp_path.iterdir()] == [files.STUDY_FILE]
    assert files.load_study(tmp_path).direction == optuna.study.StudyDirection.MAXIMIZE


def test_reader_before_study_exists_needs_no_schema_write(tmp_path):
    files.create_study_storage(tmp_path)
    size = (tmp_path / files.STUDY_FILE).stat().st_size

    # A second storage on the finished file (as a reader opens it) finds the schema there.
    optuna.storages.RDBStorage(files.study_storage_url(tmp_path)).engine.dispose()

    assert size > 0
    assert (tmp_path / files.STUDY_FILE).stat().st_size == size
