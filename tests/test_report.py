"""The HTML run report: content from a run's files, size budget, events, compare view, the refresh during training,
and the page in a real (headless Chromium) browser."""
from __future__ import annotations

import json
import math
import re
import wave
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gankit import report as report_mod
from gankit.errors import DataError
from gankit.report import Budget, build_report, pick_frames, read_run, write_report

from browser import chromium, open_page

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _StrictParser(HTMLParser):
    """Well-formedness: every non-void element closed in order, one <html>, a doctype."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.doctype = False
        self.tags: list[tuple[str, dict]] = []

    def handle_decl(self, decl: str) -> None:
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def check_html(text: str) -> _StrictParser:
    p = _StrictParser()
    p.feed(text)
    p.close()
    assert p.doctype, "no <!DOCTYPE html>"
    assert not p.errors, p.errors[:5]
    assert not p.stack, f"unclosed: {p.stack}"
    return p


EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import""", re.I)


def assert_self_contained(text: str, parser: _StrictParser) -> None:
    assert not EXTERNAL.search(text), EXTERNAL.search(text).group(0)
    for tag, attrs in parser.tags:
        for key in ("src", "href"):
            value = attrs.get(key)
            if value is not None and tag != "a":
                assert value.startswith("data:"), f"<{tag} {key}={value[:60]!r}> is not embedded"
            if tag == "a" and value is not None:
                assert value.startswith("#"), f"link {value!r} leaves the page"
    assert tuple(p for p in parser.tags if p[0] == "script" and "src" in p[1]) == ()


# ---- a run directory written by hand: every artefact suffix, events, metrics, cards ---------------------------

def _png(path: Path, side: int, value: int) -> None:
    arr = np.full((side, side, 3), value, np.uint8)
    arr[: side // 2, : side // 2] = 255 - value
    Image.fromarray(arr).save(path)


def _wav(path: Path, seconds: float = 0.2, rate: int = 8000) -> None:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (np.sin(2 * math.pi * 440 * t) * 20000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def _card(n_gen: int, fid: float) -> dict:
    return {"format": "gankit-eval", "version": 1, "metrics": {"fid": fid},
            "metric_protocols": {"fid": {"metric": "fid", "extractor": "inception", "n_gen": n_gen, "n_ref": 500}},
            "protocol": {"n_gen": n_gen, "n_ref": 500, "extractors": {"inception": {"weights_verified": True}}}}


def make_run(root: Path, name: str = "00000-toy-run", snapshots: int = 5, metrics_n: int = 1000,
             big_image: bool = False, fid_card: tuple[int, float] | None = (1000, 12.5)) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"preset": "dcgan", "recipe": "gan", "kimg": 4.0,
                                                 "metrics": ["fid"], "metrics_n": metrics_n, "extractor": "auto",
                                                 "data": {"spec": "digits", "resolution": 32}}))
    rows = []
    for i in range(1, 41):
        rows.append({"kimg": round(i * 0.1, 4), "step": i * 10, "img_per_s": 500.0 + i, "lr_scale": 1.0 if i < 25
                     else 0.5, "D/loss": 1.0 / i, "G/loss": 0.5 + 0.01 * i, "D/real": 0.1 * i, "D/grad_norm": 2.0,
                     "G/grad_norm": 3.0, "amp/scale_G": 65536.0, "D/unusual_key": float("nan") if i == 20 else 1.0})
    (run / "stats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"kimg": 4.1, "st')  # torn line
    lines = ["2026-12-01 10:00:00 command: gankit train --preset dcgan --data digits",
             "2026-12-01 10:00:00 started at kimg 0.000: preset='dcgan' recipe=gan data=digits"]
    for k in range(snapshots):
        kimg = 4.0 * k / max(snapshots - 1, 1)
        tag = f"{int(kimg):06d}" if k == 0 or int(kimg) != int(4.0 * (k - 1) / max(snapshots - 1, 1)) \
            else f"{kimg:010.3f}"
        _png(run / f"samples-{tag}.png", 300 if big_image else 24, 20 + 40 * (k % 5))
        (run / f"text-{tag}.txt").write_text(f"sample text at {kimg} <b>not markup</b>\n" * 3)
        (run / f"rows-{tag}.csv").write_text("a,b,label\n1,2,x\n3,4,<y>\n")
        _wav(run / f"clip-{tag}.wav")
        lines.append(f"2026-12-01 10:00:{k:02d} snapshot kimg {kimg:.3f}: samples-{tag}.png, text-{tag}.txt, "
                     f"rows-{tag}.csv, clip-{tag}.wav")
        if k == 1:
            lines.append("2026-12-01 10:01:00 non-finite loss at step 250: rolled back to run/latest.pt (kimg 2.000) "
                         "and halved the learning rates (scale 0.5)")
            lines.append("2026-12-01 10:02:00 resumed at kimg 3.000: preset='dcgan'")
    (run / "log.txt").write_text("\n".join(lines) + "\n")
    (run / "ckpt-000000.pt").write_bytes(b"not shown")
    (run / "metrics.jsonl").write_text('{"kimg": 2.0, "fid": 40.0}\n{"kimg": 4.0, "fid": 31.5}\n')
    (run / "best.json").write_text(json.dumps({"metric": "fid", "value": 31.5, "kimg": 4.0}))
    if fid_card:
        (run / "eval.json").write_text(json.dumps(_card(*fid_card)))
    return run


def test_report_shows_every_logged_key_artefact_event_and_card(tmp_path):
    run = make_run(tmp_path)
    text = build_report([run])
    parser = check_html(text)
    assert_self_contained(text, parser)
    data = json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text,
                                re.S).group(1).replace("<\\/", "</"))
    labels = {s["label"] for p in data["plots"] for s in p["series"]}
    stats_keys = {k for line in (run / "stats.jsonl").read_text().splitlines()[:-1] for k in json.loads(line)}
    assert stats_keys - {"kimg", "step"} <= labels            # every logged key is on a curve ...
    for key in stats_keys:                                     # ... and in the last-tick table
        assert f"<code>{key}</code>" in text
    nan_series = next(s for p in data["plots"] for s in p["series"] if s["label"] == "D/unusual_key")
    assert nan_series["values"][19] is None                    # a NaN is a gap, and the JSON stays valid
    # events: the rollback at step 250 sits at kimg 2.5 (stats: step 10 i <-> kimg 0.1 i); the resume at 3.0
    events = {(e["kind"], round(e["x"], 6)) for p in data["plots"] for e in p["events"]}
    assert ("rollback", 2.5) in events and ("resume", 3.0) in events
    assert "gankit train --preset dcgan --data digits" in text
    # every artefact suffix through its view
    assert text.count('<img class="artefact"') == 5
    assert text.count('<pre class="text-sample">') == 5 and "&lt;b&gt;not markup&lt;/b&gt;" in text
    assert text.count('<table class="preview">') == 5 and "&lt;y&gt;" in text
    assert text.count("<audio controls") == Budget().max_audio_frames
    assert "ckpt-000000" not in text
    # exact snapshot kimg from log.txt, not the file name's floor
    assert 'data-label="kimg 1"' in text and 'data-label="kimg 3"' in text
    # metrics, best, card
    assert "metric-fid" in {p["id"] for p in data["plots"]}
    assert "best snapshot" in text and "31.5" in text
    assert "eval.json" in text and "12.5" in text


def test_size_budget_bounds_a_long_run(tmp_path):
    run = make_run(tmp_path, snapshots=60, big_image=True)
    budget = Budget(max_frames=6, max_points=10, max_image_side=200)
    text = build_report([run], budget)
    assert text.count('<img class="artefact"') == 6 + 0     # 6 of 60 grids
    assert "6 of 60 snapshots shown" in text
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', text, re.S).group(1).replace("<\\/", "</"))
    assert all(len(p["x"]) == 10 for p in data["plots"] if p["id"].startswith("curve-"))
    assert data["plots"][0]["x"][-1] == 4.0                  # the last tick is always kept
    # a 300 px grid is downscaled to the budget
    import base64
    import io
    src = re.search(r'<img class="artefact" alt="[^"]+" src="data:image/png;base64,([^"]+)"', text).group(1)
    with Image.open(io.BytesIO(base64.b64decode(src))) as img:
        assert max(img.size) == 200
    small = build_report([run], Budget(max_frames=6, max_points=10, max_image_side=2000))
    assert len(text) < len(small)


def test_pick_frames_keeps_first_last_and_best():
    frames = [report_mod.Frame(float(i), Path(f"s-{i}.png")) for i in range(100)]
    picked = pick_frames(frames, 5, must=(37.2,))
    kimgs = [f.kimg for f in picked]
    assert kimgs[0] == 0 and kimgs[-1] == 99 and 37.0 in kimgs and len(kimgs) == 6
    assert pick_frames(frames[:3], 5) == frames[:3]


def test_curve_groups_are_by_name_only():
    groups = dict(report_mod.curve_groups(["kimg", "step", "img_per_s", "lr_scale", "D/loss", "G/loss", "D_r1/loss",
                                           "D/grad_norm", "D/real", "privacy/epsilon", "amp/scale_G"]))
    assert groups["Losses per phase"] == ["D/loss", "G/loss", "D_r1/loss"]
    assert groups["Gradient norms"] == ["D/grad_norm"]
    assert groups["privacy: logged values"] == ["privacy/epsilon"] and groups["D: logged values"] == ["D/real"]


def test_compare_refuses_unlike_protocols(tmp_path):
    a = make_run(tmp_path, "00000-a", fid_card=(1000, 12.5))
    same = make_run(tmp_path, "00001-same", fid_card=(1000, 14.0))
    other = make_run(tmp_path, "00002-other", metrics_n=500, fid_card=(500, 9.0))
    ok = build_report([a, same])
    check_html(ok)
    assert "not compared" not in ok and "same protocol" in ok and "14" in ok
    assert ok.count('<figure class="side">') == 2 * 4          # final artefact of each of 4 series, per run
    bad = build_report([a, other])
    parser = check_html(bad)
    assert_self_contained(bad, parser)
    assert "not compared: protocols differ" in bad
    assert "metrics_n: 1000 vs 500" in bad
    cards = bad[bad.index("Evaluation cards"):]
    assert "n_gen" in cards and ">9<" not in cards              # the refused card value is not put side by side
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', bad, re.S).group(1).replace("<\\/", "</"))
    loss = next(p for p in data["plots"] if p["id"] == "cmp-d-loss")
    assert [s["label"] for s in loss["series"]] == ["00000-a", "00002-other"]


def test_not_a_run_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a gankit run directory"):
        read_run(tmp_path / "empty")


def test_report_cli_never_overwrites_a_user_file(tmp_path):
    from click.testing import CliRunner

    from gankit.cli import cli
    run = make_run(tmp_path)
    runner = CliRunner()
    res = runner.invoke(cli, ["report", str(run)])
    assert res.exit_code == 0, res.output
    assert (run / "report.html").exists()
    res = runner.invoke(cli, ["report", str(run)])           # a report may be rewritten
    assert res.exit_code == 0, res.output
    mine = tmp_path / "notes.html"
    mine.write_text("<p>my notes</p>")
    res = runner.invoke(cli, ["report", str(run), "--out", str(mine)], standalone_mode=False)
    assert "never overwrites" in str(res.exception) and mine.read_text() == "<p>my notes</p>"


# ---- the report during training ------------------------------------------------------------------------------

def _tiny_train(tmp_path, **extra):
    from gankit import resolve, train
    cfg = resolve("dcgan", None, {"data.spec": "digits", "kimg": 0.384, "batch_size": 32, "tick_kimg": 0.128,
                                  "snapshot_kimg": 0.192, "snapshot_n": 16, "G.ngf": 8, "D.ndf": 8,
                                  "device": "cpu", **extra})
    return train(cfg, out=tmp_path, progress=False, command="gankit train --preset dcgan --data digits")


def test_training_refreshes_the_report_at_every_snapshot(tmp_path, monkeypatch):
    seen = []
    real = report_mod.write_report

    def spy(run_dirs, out, budget=None):
        path = real(run_dirs, out, budget)
        seen.append(len(list(Path(run_dirs[0]).glob("samples-*.png"))))
        return path
    monkeypatch.setattr(report_mod, "write_report", spy)
    run = _tiny_train(tmp_path)
    assert seen == [1, 2]                                      # once per snapshot, after its artefacts
    text = (run / "report.html").read_text()
    check_html(text)
    for key in json.loads((run / "stats.jsonl").read_text().splitlines()[-1]):
        assert f"<code>{key}</code>" in text
    assert "gankit train --preset dcgan --data digits" in text
    assert not list(run.glob(".report.html.*"))                # atomic: no temporary file left


def test_a_failing_report_never_stops_training(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("disk says no")
    monkeypatch.setattr(report_mod, "build_report", broken)
    with pytest.warns(RuntimeWarning, match="report.html not refreshed"):
        run = _tiny_train(tmp_path)
    assert (run / "latest.pt").exists() and len(list(run.glob("samples-*.png"))) == 2
    assert "warning: report.html not refreshed: RuntimeError: disk says no" in (run / "log.txt").read_text()


# ---- in a browser ----------------------------------------------------------------------------------------------

def test_report_renders_in_headless_chromium(tmp_path):
    run = make_run(tmp_path, snapshots=4)
    single = write_report([run], tmp_path / "single.html")
    other = make_run(tmp_path, "00001-other", metrics_n=500)
    compare = write_report([run, other], tmp_path / "compare.html")
    driver = chromium()
    try:
        for path in (single, compare):
            state = open_page(driver, path, screenshot=tmp_path / f"{path.stem}.png")
            assert state["ready"] == "1", "the report's script did not finish"
            assert state["console_errors"] == []
            assert state["images"] and all(i["ok"] for i in state["images"]), state["images"]
            assert state["plots"] and all(p["rendered"] == "1" and p["width"] > 100 and p["height"] > 100
                                          for p in state["plots"]), state["plots"]
            assert state["audio"] and all(a["ready"] >= 1 and a["error"] is None for a in state["audio"])
            assert state["external"] == []
        # the slider shows another snapshot
        driver.get(single.resolve().as_uri())
        shown = driver.execute_script("""
            const fig = document.querySelector('figure.series[data-kind=image]');
            const input = fig.querySelector('input[type=range]');
            input.value = 0; input.dispatchEvent(new Event('input'));
            return [fig.querySelector('.frame-label').textContent,
                    [...fig.querySelectorAll('.frame')].map(f => !f.classList.contains('hidden'))];""")
        assert shown == ["kimg 0", [True, False, False, False]]
    finally:
        driver.quit()
