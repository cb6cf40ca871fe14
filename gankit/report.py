"""The HTML run report: one self-contained file that shows how a run went (``gankit report``, and
``report.html`` in the run directory, refreshed by training at every snapshot).

    write_report(["runs/00003-dcgan-digits"], "report.html")              # one run
    write_report(["runs/00003-...", "runs/00004-..."], "compare.html")   # runs compared
    refresh_run_report(run_dir)                                          # the loop's call: never raises

Everything comes from the files a run writes (docs/architecture.md, "Run directory"), so the report knows no
family: ``config.json``, ``stats.jsonl`` (per tick), ``metrics.jsonl``, ``best.json``, ``log.txt`` (events:
resumes, non-finite losses, rollbacks), evaluation cards (``*.json`` with ``"format": "gankit-eval"``) and every
snapshot artefact ``<name>-<kimg><suffix>``, shown by its suffix through ``artefact_views`` (pictures with a
slider, ``.txt`` text, ``.wav`` audio players, ``.csv`` table previews). A family's artefact appears in the
report when it writes one of these suffixes; a new suffix is one ``artefact_views`` registration.

Plots are drawn in the browser by uPlot (MIT, ~50 KB, vendored in ``gankit/report_assets``, inlined into each
file): interactive (zoom, hover values, series on/off) without a CDN, and cheap to write from Python, so the
training loop can refresh the report cheaply (0.06 s for 100 ticks, ~1 s for 10,000: reading stats.jsonl
dominates; benchmarks/report_size.py). The file stays bounded on long runs (``Budget``): at most
``max_points`` rows per curve, ``max_frames`` snapshots per artefact series, pictures downscaled to
``max_image_side``, text and tables truncated, audio embedded for the last few snapshots only.

This module imports neither torch nor the engine (Pillow only to downscale large pictures); comparing
evaluation cards uses ``gankit.metrics.compare_cards``, imported when there are cards to compare.
"""
from __future__ import annotations

import base64
import bisect
import csv
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from .errors import DataError
from .io import atomic_write_text
from .registry import Registry

REPORT_NAME = "report.html"
GENERATOR = "gankit report"          # <meta name="generator">: how a report is told from a user's file
CARD_FORMAT = "gankit-eval"          # gankit.metrics.evaluate.CARD_FORMAT (not imported: that pulls in torch)

# <name>-<kimg><suffix>: kimg as the loop writes it (000004, or 000004.512 where the whole kimg was taken).
ARTEFACT_FILE = re.compile(r"^(?P<name>[A-Za-z0-9_.]+?)-(?P<kimg>\d{6}(?:\.\d{3})?)(?P<suffix>\.[A-Za-z0-9]+)$")


@dataclass
class Budget:
    """What keeps a long run's report small (the file grows with none of the run's length beyond these)."""
    max_points: int = 1500          # rows of stats.jsonl per curve (evenly strided, the last row always kept)
    max_frames: int = 24            # snapshots per artefact series (evenly spaced; first, last and best kept)
    max_image_side: int = 640       # larger pictures are downscaled (aspect kept)
    max_text_chars: int = 4000      # per text sample
    max_table_rows: int = 20        # per table preview
    max_audio_frames: int = 3       # audio clips embedded (the latest snapshots)
    max_audio_bytes: int = 4 << 20  # larger clips are linked by relative path instead of embedded


# ---- reading a run ------------------------------------------------------------------------------------------

@dataclass
class Frame:
    kimg: float
    path: Path


@dataclass
class Series:
    """One artefact name + suffix over the snapshots (``samples`` .png at kimg 0, 4, 8, ...)."""
    name: str
    suffix: str
    frames: list[Frame] = field(default_factory=list)


@dataclass
class Event:
    kimg: float
    kind: str                       # resume, nonfinite, rollback, diverged, warning, interrupted, ...
    text: str


@dataclass
class Run:
    path: Path
    name: str
    config: dict
    stats: list[dict]
    metrics: list[dict]
    best: dict | None
    events: list[Event]
    series: list[Series]
    cards: dict[str, dict]          # file name -> evaluation card
    commands: list[str]             # `command: ...` lines of log.txt (the first run, then each resume)
    log_lines: list[str]


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue                # a line being written when the report was made
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# log.txt lines that become events on the curves: (pattern, kind). kimg from "kimg X" in the line, else from
# "step N" through stats.jsonl, else the last tick before the line.
EVENT_PATTERNS: list[tuple[re.Pattern, str]] = [
    (re.compile(r"^resumed at kimg (?P<kimg>[\d.]+)"), "resume"),
    (re.compile(r"^non-finite loss at step (?P<step>\d+): rolled back"), "rollback"),
    (re.compile(r"^Training diverged: .* at step (?P<step>\d+)"), "diverged"),
    (re.compile(r"non-finite|NaN or infinite", re.I), "nonfinite"),
    (re.compile(r"interrupt", re.I), "interrupted"),
    (re.compile(r"^(warning|error)\b", re.I), "warning"),
]
_SNAPSHOT_LINE = re.compile(r"^snapshot kimg (?P<kimg>[\d.]+): (?P<files>.*)$")
_LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} (?P<msg>.*)$")


def _kimg_of_step(stats: list[dict], step: int) -> float | None:
    """kimg at training step ``step``, interpolated between the ticks of stats.jsonl."""
    pts = [(r["step"], r["kimg"]) for r in stats if isinstance(r.get("step"), int) and _num(r.get("kimg"))]
    if not pts:
        return None
    pts.sort()
    steps = [p[0] for p in pts]
    i = bisect.bisect_left(steps, step)
    if i == 0:
        s1, k1 = pts[0]
        return k1 * step / s1 if s1 else k1
    if i >= len(pts):
        return pts[-1][1]
    (s0, k0), (s1, k1) = pts[i - 1], pts[i]
    return k0 + (k1 - k0) * (step - s0) / max(s1 - s0, 1)


def _parse_log(lines: list[str], stats: list[dict]) -> tuple[list[Event], dict[str, float], list[str]]:
    """Events, the exact kimg of each snapshot file (the file name has the floor), and the commands (the first
    run's and each resume's)."""
    events: list[Event] = []
    file_kimg: dict[str, float] = {}
    commands: list[str] = []
    last_kimg = 0.0
    for raw in lines:
        m = _LOG_LINE.match(raw)
        msg = m.group("msg") if m else raw
        snap = _SNAPSHOT_LINE.match(msg)
        if snap:
            last_kimg = float(snap.group("kimg"))
            for name in snap.group("files").split(", "):
                file_kimg[name.strip()] = last_kimg
            continue
        if msg.startswith("command: "):
            commands.append(msg[len("command: "):])
            continue
        for pattern, kind in EVENT_PATTERNS:
            hit = pattern.search(msg)
            if not hit:
                continue
            groups = hit.groupdict()
            kimg = float(groups["kimg"]) if groups.get("kimg") else None
            if kimg is None and groups.get("step"):
                kimg = _kimg_of_step(stats, int(groups["step"]))
            events.append(Event(last_kimg if kimg is None else kimg, kind, msg))
            break
    return events, file_kimg, commands


def read_run(run_dir: str | Path) -> Run:
    """Everything the report shows of one run directory."""
    path = Path(run_dir)
    if path.is_file():
        path = path.parent          # a checkpoint inside the run
    if not path.is_dir():
        raise DataError(f"Run directory {str(run_dir)!r} does not exist.")
    config = _read_json(path / "config.json")
    stats = _read_jsonl(path / "stats.jsonl")
    if not isinstance(config, dict) and not stats:
        raise DataError(f"{str(run_dir)!r} is not a gankit run directory (it has neither config.json nor "
                        f"stats.jsonl).")
    log_path = path / "log.txt"
    log_lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines() if log_path.exists() else []
    events, file_kimg, commands = _parse_log(log_lines, stats)
    best = _read_json(path / "best.json")
    cards = {}
    for p in sorted(path.glob("*.json")) + sorted(path.glob("*/*.json")):
        card = _read_json(p)
        if isinstance(card, dict) and card.get("format") == CARD_FORMAT:
            cards[str(p.relative_to(path))] = card
    groups: dict[tuple[str, str], Series] = {}
    for p in sorted(path.iterdir()):
        m = ARTEFACT_FILE.match(p.name)
        if not m or not p.is_file() or m.group("suffix").lower() not in artefact_views:
            continue
        key = (m.group("name"), m.group("suffix").lower())
        kimg = file_kimg.get(p.name, float(m.group("kimg")))
        groups.setdefault(key, Series(*key)).frames.append(Frame(kimg, p))
    series = list(groups.values())
    for s in series:
        s.frames.sort(key=lambda f: f.kimg)
    return Run(path=path, name=path.name, config=config if isinstance(config, dict) else {}, stats=stats,
               metrics=_read_jsonl(path / "metrics.jsonl"), best=best if isinstance(best, dict) else None,
               events=events, series=series, cards=cards, commands=commands, log_lines=log_lines)


# ---- artefact views: suffix -> HTML of one snapshot -----------------------------------------------------------

@dataclass
class ArtefactView:
    """How one suffix is shown: ``render(path, budget) -> HTML`` of one snapshot's file."""
    kind: str                                   # "image", "text", "audio", "table"
    render: Callable[[Path, Budget, "Run"], str]
    budgeted: Callable[[int, Budget], int] | None = None   # frames to keep of n (default budget.max_frames)


artefact_views: Registry[ArtefactView] = Registry("report artefact suffix")

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
         ".webp": "image/webp", ".svg": "image/svg+xml", ".wav": "audio/wav", ".mp3": "audio/mpeg",
         ".ogg": "audio/ogg", ".flac": "audio/flac"}


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _image_bytes(path: Path, budget: Budget) -> tuple[bytes, str]:
    data = path.read_bytes()
    mime = _MIME[path.suffix.lower()]
    if path.suffix.lower() in (".svg", ".gif"):
        return data, mime
    from PIL import Image
    with Image.open(io.BytesIO(data)) as img:
        if max(img.size) <= budget.max_image_side:
            return data, mime
        img = img.copy()
        img.thumbnail((budget.max_image_side, budget.max_image_side))
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=True)
        return buf.getvalue(), "image/png"


def _render_image(path: Path, budget: Budget, run: Run) -> str:
    data, mime = _image_bytes(path, budget)
    return f'<img class="artefact" alt="{html.escape(path.name)}" src="{_data_uri(data, mime)}">'


def _render_text(path: Path, budget: Budget, run: Run) -> str:
    text = path.read_text(encoding="utf-8", errors="replace")
    cut = len(text) > budget.max_text_chars
    text = text[:budget.max_text_chars]
    more = f'<p class="note">first {budget.max_text_chars} characters of {html.escape(path.name)}</p>' if cut else ""
    return f'<pre class="text-sample">{html.escape(text)}</pre>{more}'


def _render_audio(path: Path, budget: Budget, run: Run) -> str:
    size = path.stat().st_size
    if size > budget.max_audio_bytes:   # linked, not embedded: plays when the report sits in the run directory
        src = html.escape(path.name)
        note = f'<p class="note">{size / 2**20:.1f} MiB: linked ({src}), not embedded</p>'
    else:
        src, note = _data_uri(path.read_bytes(), _MIME.get(path.suffix.lower(), "audio/wav")), ""
    return f'<audio controls preload="metadata" src="{src}"></audio>{note}'


def _render_table(path: Path, budget: Budget, run: Run) -> str:
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        rows = []
        for i, row in enumerate(csv.reader(f)):
            if i > budget.max_table_rows:
                break
            rows.append(row)
    if not rows:
        return '<p class="note">empty table</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return (f'<div class="table-wrap"><table class="preview"><thead><tr>{head}</tr></thead><tbody>{body}'
            f'</tbody></table></div><p class="note">first {len(rows) - 1} rows of {html.escape(path.name)}</p>')


for _suffix in (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg"):
    artefact_views.register(_suffix)(ArtefactView("image", _render_image))
artefact_views.register(".txt")(ArtefactView("text", _render_text))
for _suffix in (".wav", ".mp3", ".ogg", ".flac"):
    artefact_views.register(_suffix)(ArtefactView("audio", _render_audio,
                                                  budgeted=lambda n, b: min(n, b.max_audio_frames)))
artefact_views.register(".csv")(ArtefactView("table", _render_table))


def pick_frames(frames: list[Frame], keep: int, must: tuple[float, ...] = ()) -> list[Frame]:
    """At most ``keep`` frames, evenly spaced over the run, always the first and the last (and those at the
    kimg values in ``must``, e.g. the best snapshot)."""
    n = len(frames)
    if n <= keep:
        return list(frames)
    if keep <= 1:
        return [frames[-1]]
    chosen = {round(i * (n - 1) / (keep - 1)) for i in range(keep)}
    for k in must:
        chosen.add(min(range(n), key=lambda i: abs(frames[i].kimg - k)))
    return [frames[i] for i in sorted(chosen)]


# ---- curves -------------------------------------------------------------------------------------------------

def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite_or_none(v: Any) -> float | None:
    return float(v) if _num(v) and math.isfinite(v) else None


def logged_keys(rows: list[dict]) -> list[str]:
    """Every key with a number (or null) in some row, in first-seen order."""
    keys: dict[str, None] = {}
    seen: set[str] = set()
    for r in rows:
        if seen.issuperset(r):          # the common case: nothing new in this row
            continue
        for k, v in r.items():
            if k not in seen and (_num(v) or v is None):
                keys[k] = None
                seen.add(k)
    return list(keys)


def curve_groups(keys: list[str]) -> list[tuple[str, list[str]]]:
    """Logged keys -> plots, by their names only (no family knowledge): phase losses together, gradient norms
    together, then the learning-rate scale, the speed, and one plot per prefix of the remaining keys
    (``D/real``, ``D/fake`` -> "D"; ``amp/scale_G`` -> "amp"; ``privacy/epsilon`` -> "privacy")."""
    keys = [k for k in keys if k not in ("kimg", "step")]
    losses = [k for k in keys if k == "loss" or k.endswith("/loss")]
    norms = [k for k in keys if "grad_norm" in k and k not in losses]
    taken = set(losses) | set(norms) | {"lr_scale", "img_per_s"}
    groups: list[tuple[str, list[str]]] = []
    if losses:
        groups.append(("Losses per phase", losses))
    if norms:
        groups.append(("Gradient norms", norms))
    if "lr_scale" in keys:
        groups.append(("Learning-rate scale (rollbacks halve it)", ["lr_scale"]))
    if "img_per_s" in keys:
        groups.append(("Images per second", ["img_per_s"]))
    rest: dict[str, list[str]] = {}
    for k in keys:
        if k not in taken:
            rest.setdefault(k.split("/", 1)[0] if "/" in k else "other", []).append(k)
    groups += [(f"{prefix}: logged values", ks) for prefix, ks in rest.items()]
    return groups


def _stride(rows: list[dict], keep: int) -> list[dict]:
    if len(rows) <= keep:
        return rows
    step = len(rows) / keep
    out = [rows[int(i * step)] for i in range(keep)]
    if out[-1] is not rows[-1]:
        out[-1] = rows[-1]
    return out


def _plot(plot_id: str, title: str, x: list[float], series: list[tuple[str, list]], events: list[Event],
          x_label: str = "kimg") -> dict:
    return {"id": plot_id, "title": title, "x_label": x_label, "x": x,
            "series": [{"label": label, "values": values} for label, values in series],
            "events": [{"x": e.kimg, "kind": e.kind, "text": e.text[:200]} for e in events]}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "plot"


# ---- HTML pieces ---------------------------------------------------------------------------------------------

def _fmt(v: Any) -> str:
    if _num(v):
        if isinstance(v, int):
            return str(v)
        if not math.isfinite(v):
            return str(v)
        return f"{v:.5g}"
    return html.escape(str(v))


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _series_html(run: Run, s: Series, budget: Budget, uid: str, best_kimg: float | None) -> str:
    view = artefact_views.get(s.suffix)
    keep = view.budgeted(len(s.frames), budget) if view.budgeted else budget.max_frames
    frames = s.frames[-keep:] if view.budgeted else pick_frames(
        s.frames, keep, (best_kimg,) if best_kimg is not None else ())
    parts = []
    for i, f in enumerate(frames):
        hidden = "" if i == len(frames) - 1 else " hidden"
        label = f"kimg {f.kimg:g}" + (" (best)" if best_kimg is not None and abs(f.kimg - best_kimg) < 1e-9 else "")
        parts.append(f'<div class="frame{hidden}" data-label="{html.escape(label)}">{view.render(f.path, budget, run)}'
                     f'</div>')
    omitted = len(s.frames) - len(frames)
    note = (f'<p class="note">{len(frames)} of {len(s.frames)} snapshots shown (report size budget)</p>'
            if omitted else "")
    slider = (f'<div class="slider"><input type="range" min="0" max="{len(frames) - 1}" value="{len(frames) - 1}" '
              f'aria-label="snapshot of {html.escape(s.name)}"><span class="frame-label"></span></div>'
              if len(frames) > 1 else f'<div class="slider"><span class="frame-label"></span></div>')
    return (f'<figure class="series" id="{uid}" data-kind="{view.kind}"><figcaption>{html.escape(s.name)}'
            f'{html.escape(s.suffix)} over training</figcaption>{slider}<div class="frames">{"".join(parts)}</div>'
            f'{note}</figure>')


def _card_html(name: str, card: dict) -> str:
    p = card.get("protocol", {}) or {}
    rows = [[html.escape(k), _fmt(v)] for k, v in (card.get("metrics") or {}).items()]
    facts = [f"N generated {_fmt(p.get('n_gen'))}", f"N reference {_fmt(p.get('n_ref'))}"]
    for ext, proto in (p.get("extractors") or {}).items():
        verified = proto.get("weights_verified") if isinstance(proto, dict) else None
        facts.append(f"extractor {html.escape(str(ext))}"
                     + ("" if verified in (None, True) else " (weights NOT verified: not comparable with papers)"))
    if card.get("note"):
        facts.append(html.escape(str(card["note"])))
    return (f'<div class="card"><h3>{html.escape(name)}</h3>{_table(["metric", "value"], rows)}'
            f'<p class="note">{"; ".join(facts)}</p></div>')


def _summary(run: Run) -> list[list[str]]:
    cfg = run.config
    data = cfg.get("data", {}) if isinstance(cfg.get("data"), dict) else {}
    last = run.stats[-1] if run.stats else {}
    rows = [["preset", _fmt(cfg.get("preset"))], ["recipe", _fmt(cfg.get("recipe"))],
            ["data", _fmt(data.get("spec"))], ["kimg reached", _fmt(last.get("kimg", 0))],
            ["of", _fmt(cfg.get("kimg"))], ["steps", _fmt(last.get("step", 0))]]
    if run.best:
        rows.append(["best", f"{html.escape(str(run.best.get('metric')))} = {_fmt(run.best.get('value'))} at kimg "
                             f"{_fmt(run.best.get('kimg'))}"])
    return rows


# ---- the report ------------------------------------------------------------------------------------------------

def _asset(name: str) -> str:
    return resources.files("gankit").joinpath("report_assets", name).read_text(encoding="utf-8")


def _script_json(obj: Any) -> str:
    """JSON safe inside <script>: no '</' can close the element."""
    return json.dumps(obj, allow_nan=False, separators=(",", ":")).replace("</", "<\\/").replace("<!--", "<\\!--")


def _page(title: str, body: str, plots: list[dict]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<meta name=\"generator\" content=\"{GENERATOR}\">"
            f"<title>{html.escape(title)}</title><style>{_asset('uPlot.min.css')}\n{_asset('report.css')}</style>"
            f"</head><body>{body}"
            f"<script type=\"application/json\" id=\"report-data\">{_script_json({'plots': plots})}</script>"
            f"<script>{_asset('uPlot.iife.min.js')}</script><script>{_asset('report.js')}</script>"
            "</body></html>\n")


def _run_plots(run: Run, budget: Budget, prefix: str = "") -> tuple[list[dict], list[str]]:
    rows = _stride(run.stats, budget.max_points)
    x = [float(r.get("kimg", 0.0)) for r in rows]
    plots = []
    for title, keys in curve_groups(logged_keys(run.stats)):
        plots.append(_plot(f"{prefix}curve-{_slug(title)}", title, x,
                           [(k, [_finite_or_none(r.get(k)) for r in rows]) for k in keys], run.events))
    metric_plots = []
    if run.metrics:
        mx = [float(r.get("kimg", 0.0)) for r in run.metrics]
        best_events = [Event(float(run.best["kimg"]), "best", f"best {run.best.get('metric')} = "
                             f"{run.best.get('value')}")] if run.best and _num(run.best.get("kimg")) else []
        for k in logged_keys(run.metrics):
            if k == "kimg":
                continue
            metric_plots.append(_plot(f"{prefix}metric-{_slug(k)}", f"metric {k}", mx,
                                      [(k, [_finite_or_none(r.get(k)) for r in run.metrics])],
                                      run.events + best_events))
    return plots, metric_plots


def build_run_report(run: Run, budget: Budget | None = None) -> str:
    budget = budget or Budget()
    curve_plots, metric_plots = _run_plots(run, budget)
    keys = logged_keys(run.stats)
    last = run.stats[-1] if run.stats else {}
    best_kimg = float(run.best["kimg"]) if run.best and _num(run.best.get("kimg")) else None
    sections = [f'<header><h1>gankit run <code>{html.escape(run.name)}</code></h1>'
                f'<p class="note">{html.escape(str(run.path))}</p></header>',
                '<nav><a href="#overview">overview</a> <a href="#samples">samples</a> <a href="#metrics">metrics</a> '
                '<a href="#curves">curves</a> <a href="#events">events</a> <a href="#values">logged values</a> '
                '<a href="#config">config</a></nav>']
    command = ("".join(f'<p>Command: <code class="command">{html.escape(c)}</code></p>' for c in run.commands)
               if run.commands else
               '<p class="note">Command: not recorded (runs made through the Python API have none).</p>')
    sections.append(f'<section id="overview"><h2>Overview</h2><div class="overview">'
                    f'{_table(["", ""], _summary(run), "summary")}<div>{command}</div></div></section>')
    plots_html = "".join(f'<div class="plot" id="{p["id"]}" data-title="{html.escape(p["title"])}"></div>'
                         for p in curve_plots)
    curves = (f'<section id="curves"><h2>Training curves</h2>'
                    f'<p class="note">per tick (stats.jsonl, {len(run.stats)} ticks'
                    f'{f", {budget.max_points} shown" if len(run.stats) > budget.max_points else ""}); vertical '
                    f'lines mark events from log.txt; drag to zoom, double-click to reset, click a legend entry to '
                    f'hide it</p>{plots_html or "<p>No ticks logged yet.</p>"}</section>')    # after the metrics
    series_html = "".join(_series_html(run, s, budget, f"series-{_slug(s.name + s.suffix)}", best_kimg)
                          for s in run.series)
    best_html = ""
    if best_kimg is not None:
        pictures = [s for s in run.series if artefact_views.get(s.suffix).kind == "image" and s.frames]
        if pictures:
            frame = min(pictures[0].frames, key=lambda f: abs(f.kimg - best_kimg))
            best_img = _render_image(frame.path, budget, run).replace('class="artefact"', 'class="best"')
            best_html = (f'<figure class="best"><figcaption>best snapshot: {html.escape(pictures[0].name)} at kimg '
                         f'{frame.kimg:g} ({html.escape(str(run.best.get("metric")))} = {_fmt(run.best.get("value"))}'
                         f')</figcaption>{best_img}</figure>')
    sections.append(f'<section id="samples"><h2>Samples over training</h2>'
                    f'{series_html or "<p>No snapshot artefacts yet.</p>"}{best_html}</section>')
    metric_html = "".join(f'<div class="plot" id="{p["id"]}" data-title="{html.escape(p["title"])}"></div>'
                          for p in metric_plots)
    metric_rows = [[_fmt(r.get("kimg"))] + [_fmt(r.get(k)) for k in logged_keys(run.metrics) if k != "kimg"]
                   for r in run.metrics]
    metric_table = _table(["kimg"] + [html.escape(k) for k in logged_keys(run.metrics) if k != "kimg"],
                          metric_rows) if run.metrics else ""
    cards_html = "".join(_card_html(n, c) for n, c in run.cards.items()) or (
        "<p>No evaluation cards in the run directory (gankit eval --out RUN_DIR/eval.json).</p>")
    sections.append(f'<section id="metrics"><h2>Metrics</h2>'
                    f'{metric_html}{metric_table or "<p>No training-time metrics (set metrics=[...]).</p>"}'
                    f'<h3>Evaluation cards</h3>{cards_html}</section>')
    sections.append(curves)
    event_rows = [[_fmt(e.kimg), html.escape(e.kind), html.escape(e.text)] for e in run.events]
    sections.append(f'<section id="events"><h2>Events</h2>'
                    f'{_table(["kimg", "event", "log.txt"], event_rows) if event_rows else "<p>None.</p>"}'
                    f'<details><summary>log.txt ({len(run.log_lines)} lines, last 200)</summary><pre>'
                    f'{html.escape(chr(10).join(run.log_lines[-200:]))}</pre></details></section>')
    value_rows = [[f"<code>{html.escape(k)}</code>", _fmt(last.get(k))] for k in keys]
    sections.append(f'<section id="values"><h2>Logged values (last tick)</h2>'
                    f'{_table(["key", "value"], value_rows, "logged-keys")}</section>')
    sections.append(f'<section id="config"><h2>Config</h2><details open><summary>config.json</summary><pre>'
                    f'{html.escape(json.dumps(run.config, indent=2))}</pre></details></section>')
    return _page(f"gankit report: {run.name}", "".join(sections), curve_plots + metric_plots)


# ---- compare view ----------------------------------------------------------------------------------------------

# The config entries that decide whether two runs' training-time metric numbers measure the same thing.
METRIC_PROTOCOL_KEYS = ("metrics", "metrics_n", "extractor", "data.spec", "data.resolution", "data.split",
                        "data.options")


def training_metric_protocol(config: dict) -> dict[str, Any]:
    out = {}
    for key in METRIC_PROTOCOL_KEYS:
        value: Any = config
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        out[key] = value
    return out


def _protocol_diffs(a: dict, b: dict) -> list[str]:
    return [f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _union_x(runs: list[Run], budget: Budget) -> tuple[list[float], list[list[dict]], list[dict[float, dict]]]:
    strided = [_stride(r.stats, budget.max_points) for r in runs]
    by_x = [{float(row.get("kimg", 0.0)): row for row in rows} for rows in strided]
    xs = sorted(set().union(*[set(m) for m in by_x])) if by_x else []
    return xs, strided, by_x


def build_compare_report(runs: list[Run], budget: Budget | None = None) -> str:
    budget = budget or Budget()
    labels = [r.name for r in runs]
    xs, _, by_x = _union_x(runs, budget)
    all_keys = list(dict.fromkeys(k for r in runs for k in logged_keys(r.stats)))
    plots = []
    for title, keys in curve_groups(all_keys):
        for k in keys:
            plots.append(_plot(f"cmp-{_slug(k)}", f"{k} ({title.split(' (')[0].lower()})", xs,
                               [(f"{lab}", [_finite_or_none(by_x[i].get(x, {}).get(k)) for x in xs])
                                for i, lab in enumerate(labels)], []))
    # Training-time metrics: comparable only where the runs measured them the same way.
    protos = [training_metric_protocol(r.config) for r in runs]
    metric_keys = list(dict.fromkeys(k for r in runs for k in logged_keys(r.metrics) if k != "kimg"))
    metric_rows = []
    for k in metric_keys:
        cells = []
        for r in runs:
            vals = [row.get(k) for row in r.metrics if _num(row.get(k))]
            cells.append(_fmt(vals[-1]) if vals else "-")
        diffs = [d for p in protos[1:] for d in _protocol_diffs(protos[0], p)]
        if diffs:
            verdict = '<span class="refused">not compared: protocols differ</span> (' + html.escape("; ".join(
                dict.fromkeys(diffs))) + ")"
            cells = ['<span class="refused-value">' + c + "</span>" for c in cells]
        else:
            verdict = "same protocol"
        metric_rows.append([f"<code>{html.escape(k)}</code> (last)"] + cells + [verdict])
    metric_html = (_table(["metric"] + [html.escape(lab) for lab in labels] + ["comparable?"], metric_rows,
                          "compare-metrics") if metric_rows else "<p>No training-time metrics in these runs.</p>")
    card_html = _compare_cards_html(runs)
    samples = []
    names = list(dict.fromkeys((s.name, s.suffix) for r in runs for s in r.series))
    for name, suffix in names:
        cells = []
        for r in runs:
            s = next((s for s in r.series if (s.name, s.suffix) == (name, suffix) and s.frames), None)
            body = artefact_views.get(suffix).render(s.frames[-1].path, budget, r) if s else "<p>none</p>"
            kimg = f"kimg {s.frames[-1].kimg:g}" if s else ""
            cells.append(f'<figure class="side"><figcaption>{html.escape(r.name)} {kimg}</figcaption>{body}</figure>')
        samples.append(f'<h3>{html.escape(name + suffix)} (final)</h3><div class="side-by-side">{"".join(cells)}</div>')
    summary_rows = [[html.escape(r.name)] + [c[1] for c in _summary(r)[:6]] for r in runs]
    plots_html = "".join(f'<div class="plot" id="{p["id"]}" data-title="{html.escape(p["title"])}"></div>'
                         for p in plots)
    body = (f'<header><h1>gankit: {len(runs)} runs compared</h1></header>'
            f'<section id="overview"><h2>Runs</h2>{_table(["run", "preset", "recipe", "data", "kimg", "of", "steps"], summary_rows)}</section>'
            f'<section id="curves"><h2>Curves overlaid</h2>{plots_html or "<p>No ticks logged.</p>"}</section>'
            f'<section id="samples"><h2>Final samples side by side</h2>{"".join(samples) or "<p>No artefacts.</p>"}</section>'
            f'<section id="metrics"><h2>Training-time metrics</h2>{metric_html}<h3>Evaluation cards</h3>{card_html}</section>')
    return _page("gankit compare: " + ", ".join(labels), body, plots)


def _compare_cards_html(runs: list[Run]) -> str:
    """Cards of the same file name across runs, each number compared only where the protocols agree
    (``gankit.metrics.compare_cards``, the rule of ``gankit compare``)."""
    names = list(dict.fromkeys(n for r in runs for n in r.cards))
    if not names:
        return "<p>No evaluation cards in these runs.</p>"
    from .metrics import compare_cards
    out = []
    for name in names:
        have = [(r, r.cards[name]) for r in runs if name in r.cards]
        if len(have) < 2:
            out.append(f'<p>{html.escape(name)}: only in {html.escape(have[0][0].name)}.</p>')
            continue
        ref_run, ref_card = have[0]
        rows = []
        for r, card in have[1:]:
            for row in compare_cards(ref_card, card):
                if row["comparable"]:
                    verdict = "same protocol"
                    a, b = _fmt(row["a"]), _fmt(row["b"])
                else:
                    verdict = ('<span class="refused">not compared: protocols differ</span> (' +
                               html.escape("; ".join(row["differences"])[:400]) + ")")
                    a, b = "-", "-"
                rows.append([f"<code>{html.escape(row['name'])}</code>", a, f"{html.escape(r.name)}: {b}", verdict])
        out.append(f"<h4>{html.escape(name)}</h4>" + _table(["number", html.escape(ref_run.name), "other run",
                                                             "comparable?"], rows, "compare-cards"))
    return "".join(out)


# ---- entry points ----------------------------------------------------------------------------------------------

def build_report(run_dirs: list[str | Path], budget: Budget | None = None) -> str:
    if not run_dirs:
        raise DataError("Give at least one run directory.")
    runs = [read_run(p) for p in run_dirs]
    return build_run_report(runs[0], budget) if len(runs) == 1 else build_compare_report(runs, budget)


def write_report(run_dirs: list[str | Path], out: str | Path, budget: Budget | None = None) -> Path:
    """Write the report atomically (a reader never sees half a file)."""
    out = Path(out)
    atomic_write_text(out, build_report(run_dirs, budget))
    return out


def is_report(path: str | Path) -> bool:
    """Whether ``path`` is a file this module wrote (which may be replaced; anything else is the user's)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(4096)
    except OSError:
        return False
    return f'<meta name="generator" content="{GENERATOR}">' in head


def refresh_run_report(run_dir: str | Path) -> str | None:
    """The training loop's call: rewrite ``run_dir/report.html``; returns the error text instead of raising,
    so a report that fails never stops training."""
    try:
        write_report([run_dir], Path(run_dir) / REPORT_NAME)
        return None
    except Exception as e:  # noqa: BLE001  a report is never worth a run
        return f"{type(e).__name__}: {e}"
