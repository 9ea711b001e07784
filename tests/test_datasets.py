"""Converters of public datasets into replay input, on tiny files written here in the datasets' own formats."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from carebed.schemas import DeviceKind, Feedback, Reading
from carebed_app.cli import main
from evaluation.datasets import kasteren, placelab
from evaluation.real import cuts, load, truncated
from simulators.residents import IncidentType
from tests.detection_data import TZ

KASTEREN_HEADER = """Start time: Time sensor started firing\r
ID: sensor id (see list below)\r
\r
Sensor IDs are: \r
    [ 1]    'Microwave'         \r
    [12]    'Frontdoor'         \r
    [14]    'ToiletFlush'       \r
\r
Start time          \tEnd time            \tID\tVal\r
--------------------\t--------------------\t--\t---\r
"""
STAMP = "%d-%b-%Y %H:%M:%S"


def kasteren_files(folder: Path, days: int = 6) -> Path:
    """Flushes at 07:10, 12:40 and 21:30 each day, a microwave at noon, and a weekend away from day 2 to day 3."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    day0 = datetime(2008, 2, 25)
    for d in range(days):
        for hour, minute, sensor in ((7, 10, 14), (12, 0, 1), (12, 40, 14), (21, 30, 14)):
            at = day0 + timedelta(days=d, hours=hour, minutes=minute)
            rows.append(f"{at:{STAMP}}\t{at + timedelta(seconds=2):{STAMP}}\t{sensor}\t1\r\n")
    rows.insert(3, "garbage line\r\n")
    rows.append(f"{day0:{STAMP}}\t{day0:{STAMP}}\t99\t1\r\n")
    (folder / "kasterenSenseData.txt").write_text(KASTEREN_HEADER + "".join(rows), encoding="latin-1")
    leave, back = day0 + timedelta(days=2, hours=8), day0 + timedelta(days=3, hours=18)
    short = day0 + timedelta(days=4, hours=9)
    acts = (
        "ID: activity id\r\n1: 'leave house'\r\n\r\n"
        f"{leave:{STAMP}}\t{back:{STAMP}}\t1\r\n"
        f"{short:{STAMP}}\t{short + timedelta(hours=2):{STAMP}}\t1\r\n"
        f"{short:{STAMP}}\t{short + timedelta(minutes=2):{STAMP}}\t4\r\n"
    )
    (folder / "kasterenActData.txt").write_text(acts, encoding="latin-1")
    return folder


def test_kasteren_flushes_become_six_litres_and_long_absences_are_declared(tmp_path: Path) -> None:
    folder = kasteren_files(tmp_path / "houseA")
    home = load(f"kasteren:{folder}")
    assert home.home_id == "kasteren-housea"
    assert len(home.water) == 18 and all(litres == 6.0 for _, litres, _ in home.water)
    assert home.skipped == {"unreadable sensor line": 1, "unknown sensor 99": 1}
    t = home.timeline(TZ)
    assert t.days == 6 and sum(t.water_l) == pytest.approx(108.0)
    flush = t.slot_of(datetime(2008, 2, 25, 7, 10, tzinfo=TZ))
    assert t.water_l[flush] == pytest.approx(6.0)
    assert [(a.start.astimezone(TZ).day, a.end.astimezone(TZ).day) for a in t.away] == [(27, 28)], "2 h out is not"


def test_kasteren_refuses_a_file_without_its_header(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ToiletFlush"):
        kasteren.read(["25-Feb-2008 00:20:14\t25-Feb-2008 00:22:57\t24\t1"])


SENSORS = "100,Bathroom,Toilet Flush \r\n68,Bathroom,Sink faucet - hot\r\n106,Kitchen,Burner\r\n140,Foyer,Door\r\n"


def test_placelab_maps_flushes_taps_and_burners_with_caps(tmp_path: Path) -> None:
    data = (
        "Toileting,4/1/2003,17:30:36,17:46:41\r\n100,68\r\nToilet Flush,Sink faucet - hot\r\n"
        "17:39:37,17:39:46\r\n18:10:57,17:39:52\r\n"
        "Washing hands,4/1/2003,17:38:0,17:41:0\r\n68,140\r\nSink faucet - hot,Door\r\n"
        "17:39:46,17:40:1\r\n17:39:52,17:40:5\r\n"
        "Preparing a snack,4/1/2003,23:50:0,0:30:0\r\n106,68\r\nBurner,Sink faucet - hot\r\n"
        "0:5:0,23:52:0\r\n0:25:0,3:52:0\r\n"
        "Grooming,4/2/2003,8:0:0,8:5:0\r\n100,68\r\nToilet Flush\r\n8:1:0\r\n8:2:0\r\n"
    )
    home = placelab.read(SENSORS.splitlines(), data.splitlines(), "placelab-s1")
    water = sorted(home.water)
    assert [round(litres, 2) for _, litres, _ in water] == [6.0, 1.0, 30.0], (
        "flush, a tap of 6 s (counted as 10 s), a tap capped at 5 min"
    )
    assert water[1][0] == datetime(2003, 4, 1, 17, 39, 46), "the same switch in two blocks counts once"
    ((burner_at, m3, minutes),) = home.gas
    assert burner_at == datetime(2003, 4, 2, 0, 5) and minutes == pytest.approx(20.0)
    assert m3 == pytest.approx(0.4 * 20 / 60)
    assert home.skipped == {"unreadable block": 1}
    assert home.first == datetime(2003, 4, 1, 17, 39, 37) and home.last == datetime(2003, 4, 2, 0, 5)


def test_a_cut_stops_all_use_and_keeps_only_absences_before_it(tmp_path: Path) -> None:
    home = load(f"kasteren:{kasteren_files(tmp_path / 'houseA', days=8)}")
    t = home.timeline(TZ)
    import random

    moments = cuts(t, home, TZ, 20, random.Random(1))
    assert len(moments) == 20
    assert all(m >= t.start + timedelta(days=3) and not any(a.start <= m <= a.end for a in t.away) for m in moments)
    case = truncated(t, moments[0], TZ)
    (truth,) = case.timeline.incidents
    assert truth.incident in (IncidentType.COLLAPSE_DAY, IncidentType.COLLAPSE_NIGHT)
    after = case.timeline.slot_of(moments[0]) + 1
    assert sum(case.timeline.water_l[after:]) == 0 and sum(case.timeline.water_l[:after]) > 0
    assert case.timeline.at(case.timeline.slots) >= moments[0] + timedelta(hours=24)
    assert all(a.end <= moments[0] for a in case.timeline.away)


def test_convert_dataset_writes_replay_input_that_replays(tmp_path: Path) -> None:
    folder = kasteren_files(tmp_path / "houseA")
    out = tmp_path / "kasteren.jsonl"
    result = CliRunner().invoke(main, ["convert-dataset", f"kasteren:{folder}", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "18 water and 0 gas uses, 1 declared absences" in result.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    readings = [Reading.model_validate_json(line) for line in lines if '"kind"' not in line]
    feedback = [Feedback.model_validate_json(line) for line in lines if '"kind"' in line]
    assert {r.device_kind for r in readings} == {DeviceKind.WATER_METER} and len(feedback) == 1
    volumes = [r.water_volume_l for r in readings if r.water_volume_l is not None]
    assert volumes[-1] - volumes[0] == pytest.approx(108.0, abs=0.1)
    replayed = CliRunner().invoke(main, ["replay", str(out)])
    assert replayed.exit_code == 0 and "rejected" not in replayed.stderr


def test_eval_real_scores_carebed_and_the_rules_on_cut_homes(tmp_path: Path) -> None:
    folder = kasteren_files(tmp_path / "houseA", days=8)
    args = ["eval", "--real", f"kasteren:{folder}", "--truncations", "3", "--seed", "2", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["pooled"]["truncations"] == 3
    home = report["homes"]["kasteren-housea"]
    assert home["days"] == 8 and home["water_l_per_day"] == pytest.approx(18.0, abs=0.1)
    assert home["carebed"]["collapses"] == 3 and sum(home["carebed"]["versus_rule"].values()) == 3
    assert home["baselines"]["no_water_12h"]["collapse_found_12h"] is not None
    bad = CliRunner().invoke(main, ["eval", "--real", f"casas:{folder}"])
    assert bad.exit_code == 2 and "unknown dataset" in bad.output
