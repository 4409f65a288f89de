"""The twin's store on both backends: every record type back as written, windows, histories, upserts,
retention, the schema version, and the errors that name the database."""

from __future__ import annotations

import builtins
import dataclasses
import math
import sqlite3

import numpy as np
import pytest

from sdr_isac.errors import InputError
from sdr_isac.fusion.records import Handover, Track
from sdr_isac.twin import SCHEMA_VERSION, TwinError, TwinUnavailableError, open_twin
from sdr_isac.twin.connect import is_dsn
from sdr_isac.twin.postgres import redact
from tests.twin.factories import detection, estimate, link, same, track


def test_round_trip_of_every_record_type(db, rng):
    dets = [detection(rng, f"bs{i % 3}", 0.01 * i, angle=bool(i % 2)) for i in range(40)]
    links = [link(rng, 0.02 * i, placed=bool(i % 2), angle=i % 3 == 0) for i in range(20)]
    links.append(link(rng, 0.5).__class__(tx=1, rx=1, range_m=3.0, rate_mps=0.0, var_range_m2=1.0,
                                           var_rate_mps2=1.0, snr_re=float("nan"), t_s=0.5))   # unknown SNR
    ests = [estimate(rng, 0.03 * i, num_links=i % 4, velocity=bool(i % 2)) for i in range(10)]
    tracks = [track(rng, f"T{i}", t0_s=0.1 * i, n=3 + i, handover=bool(i % 2)) for i in range(4)]
    tracks.append(Track("empty", np.zeros(0), np.zeros((0, 6)), np.zeros((0, 6, 6))))
    with open_twin(db) as store:
        assert store.write([*dets, *links, *ests, *tracks]) == 40 + 21 + 10 + 5
        assert store.schema_version() == SCHEMA_VERSION
        got_d = store.detections()
        assert len(got_d) == 40 and all(same(a, b) for a, b in zip(got_d, dets))
        got_l = store.links()
        assert len(got_l) == 21 and all(same(a, b) for a, b in zip(got_l, links))
        assert np.isnan(got_l[-1].snr_re)
        got_e = store.estimates()
        assert len(got_e) == 10 and all(same(a, b) for a, b in zip(got_e, ests))
        for t in tracks:
            assert same(store.track_history(t.track_id), t)
        counts = store.counts()
    assert counts == {"detections": 40, "links": 21 + sum(len(e.links) for e in ests), "estimates": 10,
                      "track_states": sum(t.num_states for t in tracks), "handovers": 2, "tracks": 5}


def test_values_survive_reopening(db, rng):
    dets = [detection(rng, "bs0", 1.0)]
    with open_twin(db) as store:
        store.write(dets)
    with open_twin(db, read_only=True) as store:
        assert same(store.detections(), dets)


def test_windows_and_node_filter(db, rng):
    dets = [detection(rng, f"bs{i % 2}", float(i)) for i in range(10)]
    with open_twin(db) as store:
        store.write(dets)
        assert [d.t_s for d in store.detections(3.0, 6.0)] == [3.0, 4.0, 5.0, 6.0]
        assert [d.t_s for d in store.detections(since_s=2.0, node_id="bs1")] == [3.0, 5.0, 7.0, 9.0]
        with pytest.raises(InputError, match="since_s = 5.0 s is after until_s = 1.0 s"):
            store.detections(5.0, 1.0)
        with pytest.raises(InputError, match="since_s = nan"):
            store.detections(float("nan"))


def test_tracks_window_cuts_each_track_to_its_states_in_it(db, rng):
    a = track(rng, "A", t0_s=0.0, n=10, dt_s=1.0)          # 0 ... 9 s, handover at 5 s
    b = track(rng, "B", t0_s=20.0, n=3, dt_s=1.0)
    with open_twin(db) as store:
        store.write([a, b])
        got = store.tracks(4.0, 6.0)
        assert [t.track_id for t in got] == ["A"]
        keep = (a.t_s >= 4) & (a.t_s <= 6)
        assert np.array_equal(got[0].t_s, a.t_s[keep]) and np.array_equal(got[0].states, a.states[keep])
        assert np.array_equal(got[0].covariances, a.covariances[keep])
        assert got[0].handovers == a.handovers and got[0].stations == a.stations
        assert [t.track_id for t in store.tracks(since_s=0.0)] == ["A", "B"]
        summary = store.track_summaries(since_s=0.0)
        assert [(s.track_id, s.num_states, s.first_t_s, s.last_t_s) for s in summary] == \
            [("A", 10, 0.0, 9.0), ("B", 3, 20.0, 22.0)]
        pts = store.track_points(4.0, 6.0)
        # the owner of each state: mecs-1 before the handover at 5 s, mecs-2 from it on
        assert pts.station.tolist() == ["mecs-1", "mecs-2", "mecs-2"]


def test_rewriting_a_growing_track_updates_instead_of_duplicating(db, rng):
    full = track(rng, "G", n=8, handover=True)
    first = Track("G", full.t_s[:4], full.states[:4], full.covariances[:4], full.stations[:1], (), "tentative")
    with open_twin(db) as store:
        store.write([first])
        store.write([first])
        assert store.counts()["track_states"] == 4
        store.write([full])
        assert same(store.track_history("G"), full)
        assert store.counts()["track_states"] == 8 and store.counts()["handovers"] == 1


def test_a_track_twice_in_one_batch_keeps_the_later_copy(db, rng):
    first = track(rng, "L", n=150)                        # long enough for PostgreSQL's COPY + upsert path
    second = Track("L", first.t_s, first.states + 1.0, first.covariances, first.stations, first.handovers, "deleted")
    with open_twin(db) as store:
        store.write([first, second])
        assert same(store.track_history("L"), second)
        assert store.counts()["track_states"] == 150


def test_history_of_an_unknown_track_names_it(db):
    with open_twin(db) as store, pytest.raises(InputError, match="track_id = 'nope': no such track"):
        store.track_history("nope")


def test_prune_deletes_rows_older_than_the_age(db, rng):
    est = [estimate(rng, float(t)) for t in range(10)]
    dets = [detection(rng, "bs0", float(t)) for t in range(10)]
    old = track(rng, "old", t0_s=0.0, n=3, dt_s=1.0, handover=False)      # states at 0, 1, 2 s
    new = track(rng, "new", t0_s=5.0, n=5, dt_s=1.0)                      # 5 ... 9 s, handover at 7 s
    with open_twin(db) as store:
        store.write([*est, *dets, old, new])
        deleted = store.prune(3.0)                     # newest record at 9 s: everything before 6 s goes
        assert deleted["estimates"] == 6 and deleted["detections"] == 6 and deleted["tracks"] == 1
        assert [e.t_s for e in store.estimates()] == [6.0, 7.0, 8.0, 9.0]
        assert all(len(e.links) == 2 for e in store.estimates())
        assert store.counts()["links"] == 8
        assert store.track_history("new").t_s.tolist() == [6.0, 7.0, 8.0, 9.0]
        with pytest.raises(InputError):
            store.track_history("old")
        assert store.prune(100.0, now_s=1e6)["detections"] == 4
        with pytest.raises(InputError, match="older_than_s = -1"):
            store.prune(-1)
        kept = store.counts()
        for bad in (math.inf, -math.inf, math.nan, "5", True):   # an infinite 'now' would delete everything
            with pytest.raises(InputError, match="now_s"):
                store.prune(1.0, now_s=bad)
        assert store.counts() == kept


def test_prune_keeps_the_links_of_an_estimate_it_keeps(db, rng):
    """A link captured a moment before its estimate's time (a multi-node estimate's older link) stays as long as
    its estimate does: the links went by their own time and the kept estimate read back with fewer links."""
    kept = dataclasses.replace(estimate(rng, 10.0), links=(link(rng, 9.999), link(rng, 10.0)))
    alone = link(rng, 9.5)
    with open_twin(db) as store:
        store.write([kept, estimate(rng, 5.0), alone])
        deleted = store.prune(0.0, now_s=10.0)
        assert (deleted["estimates"], deleted["links"]) == (1, 3)     # the old estimate's two links, the lone one
        (back,) = store.estimates()
        assert same(back, kept)


def test_what_prune_removed_is_not_written_back_by_the_next_scan(db, rng):
    """A host writes each scan's newest state with every handover of the track: a pruned handover came back with
    the next scan, so retention never held for handovers."""
    full = Track("A1", np.array([0.0, 1.0, 2.0, 3.0]), rng.normal(size=(4, 6)), np.tile(np.eye(6), (4, 1, 1)),
                 ("m1", "m2", "m3"), (Handover(1.0, "m1", "m2", "x"), Handover(3.0, "m2", "m3", "y")), "confirmed")
    with open_twin(db) as store:
        store.write([full])
        store.prune(0.5, now_s=2.0)                                   # cutoff 1.5 s
        assert [h.t_s for _, h in store.handovers()] == [3.0]
        store.write([full.latest()])                                  # the next scan: every handover again
        store.write([full])                                           # or the whole track
        assert [h.t_s for _, h in store.handovers()] == [3.0]
        assert store.track_history("A1").t_s.tolist() == [2.0, 3.0]
        gone = Track("B1", np.array([0.0, 1.0]), rng.normal(size=(2, 6)), np.tile(np.eye(6), (2, 1, 1)))
        store.write([gone])                                           # wholly before the cutoff: nothing of it
        with pytest.raises(InputError, match="no such track"):
            store.track_history("B1")


def test_prune_of_an_empty_twin_deletes_nothing(db):
    with open_twin(db) as store:
        assert set(store.prune(0.0).values()) == {0}


def test_a_record_of_another_type_is_refused_and_nothing_is_written(db, rng):
    with open_twin(db) as store:
        with pytest.raises(InputError, match="record 1 is a Handover"):
            store.write([detection(rng), Handover(0.0, "a", "b", "x")])
        assert store.counts()["detections"] == 0


def test_newer_and_unknown_schema_versions_are_refused(db):
    open_twin(db).close()
    for version, words in ((SCHEMA_VERSION + 1, "newer than this sdr_isac reads"), (0, "is unknown")):
        with _raw(db) as raw:
            raw.execute(f"UPDATE schema_version SET version = {version}")
        with pytest.raises(TwinError, match=words):
            open_twin(db)
        with _raw(db) as raw:
            raw.execute(f"UPDATE schema_version SET version = {SCHEMA_VERSION}")


def test_measured_flags_round_trip(db, rng):
    flagged = dataclasses.replace(track(rng, "F", n=4), measured=np.array([True, False, False, True]))
    unknown = track(rng, "U", n=3)
    with open_twin(db) as store:
        store.write([flagged, unknown])
        assert store.track_history("F").measured.tolist() == [True, False, False, True]
        assert store.track_history("U").measured is None
        assert same(store.track_history("F"), flagged)


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_twin_is_read_as_it_is_and_upgraded_by_a_writer(db, rng, version):
    """Version 1 had no ``track_states.measured``, versions 1 and 2 no ``estimates.cov_position_velocity_m2ps``:
    a reader takes what is missing as not known (None), a writer adds the columns (NULL in the old rows) and
    moves the twin to the current version."""
    old = track(rng, "OLD", n=3)
    old_est = estimate(rng, 0.5)
    with open_twin(db) as store:
        store.write([old, old_est])
    with _raw(db) as raw:                                   # what a writer of that version left behind
        raw.execute("ALTER TABLE estimates DROP COLUMN cov_position_velocity_m2ps")
        if version == 1:
            raw.execute("ALTER TABLE track_states DROP COLUMN measured")
        raw.execute(f"UPDATE schema_version SET version = {version}")
    unknown = dataclasses.replace(old_est, cov_position_velocity_m2ps=None)
    with open_twin(db, read_only=True) as store:
        assert store.schema_version() == version
        assert same(store.track_history("OLD"), old)         # measured None: not known (version 1), or None
        assert same(store.estimates(), [unknown])
    with open_twin(db) as store:
        assert store.schema_version() == SCHEMA_VERSION == 3
        assert same(store.track_history("OLD"), old) and same(store.estimates(), [unknown])
        new = dataclasses.replace(track(rng, "NEW", t0_s=1.0, n=2), measured=np.array([False, True]))
        new_est = estimate(rng, 1.5)
        store.write([new, new_est])
        assert store.track_history("NEW").measured.tolist() == [False, True]
        assert same(store.estimates(since_s=1.0), [new_est])
    with open_twin(db) as store:                            # upgraded once: opening again changes nothing
        assert store.schema_version() == 3 and store.track_history("NEW").measured.tolist() == [False, True]
        assert same(store.estimates(), [unknown, new_est])


class _raw:
    """A bare connection of the test's backend (to break a schema on purpose)."""

    def __init__(self, db: str):
        self.db = db

    def __enter__(self):
        if is_dsn(self.db):
            import psycopg

            self.conn = psycopg.connect(self.db, autocommit=True)
        else:
            self.conn = sqlite3.connect(self.db, isolation_level=None)
        return self.conn

    def __exit__(self, *exc):
        self.conn.close()


def test_a_sqlite_file_of_another_program_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE tracks (x)")
    with pytest.raises(TwinError, match="other.sqlite: holds twin tables .*tracks.* but no schema_version"):
        open_twin(str(path))


def test_a_dsn_without_psycopg_asks_for_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_psycopg(name, *args, **kwargs):
        if name == "psycopg" or name.startswith("psycopg."):
            raise ImportError("No module named 'psycopg'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psycopg)
    with pytest.raises(TwinUnavailableError, match=r"pip install 'sdr_isac\[twin\]'") as info:
        open_twin("postgresql://me:secret@db.example/twin")
    assert "secret" not in str(info.value)


def test_dsn_detection_and_redaction():
    assert is_dsn("postgresql://u@h/d") and is_dsn("postgres://h/d") and is_dsn("host=/tmp dbname=x")
    assert not is_dsn("twin.sqlite") and not is_dsn("/data/a=b.sqlite") and not is_dsn(":memory:")
    assert redact("postgresql://me:pw@h:5432/d") == "postgresql://me:***@h:5432/d"
    assert redact("host=h password=pw dbname=d") == "host=h password=*** dbname=d"


def test_bad_arguments_of_open_twin():
    with pytest.raises(InputError, match="db = ''"):
        open_twin("")
    with pytest.raises(InputError, match="busy_timeout_s = -1"):
        open_twin(":memory:", busy_timeout_s=-1)
    with pytest.raises(TwinError, match="no such twin file"):
        open_twin("/nonexistent/twin.sqlite", read_only=True)
    with pytest.raises(TwinError, match="/nonexistent/dir/twin.sqlite: cannot be opened"):
        open_twin("/nonexistent/dir/twin.sqlite")


def test_unreachable_server_names_the_dsn_without_password(tmp_path):
    pytest.importorskip("psycopg")
    with pytest.raises(TwinError, match="cannot reach the server") as info:
        open_twin(f"host={tmp_path} port=1 dbname=x user=x password=hunter2 connect_timeout=2")
    assert "hunter2" not in str(info.value) and str(tmp_path) in str(info.value)
