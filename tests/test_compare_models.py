"""`vidscale compare --models a,b[,c]`: several results beside bicubic."""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import SAMPLES
from tests.media import VideoSpec, make_video
from vidscale import compare as cmp
from vidscale.cli import main
from vidscale.compare import GAP, LABEL_BAR
from vidscale.errors import ModelError, UsageError
from vidscale.media.image import read_picture
from vidscale.upscaler import Upscaler

BUNNY = SAMPLES / "bunny.png"
W, H = 40, 24  # the crop; at x2 every panel is 80x48
CROP = ["--crop", f"200,100,{W},{H}"]


def _panel(canvas: np.ndarray, i: int, width: int = 2 * W, height: int = 2 * H, cols: int = 99) -> np.ndarray:
    y0, x0 = (i // cols) * (height + LABEL_BAR + GAP) + LABEL_BAR, (i % cols) * (width + GAP)
    return canvas[y0:y0 + height, x0:x0 + width]


@pytest.fixture(scope="module")
def singles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Each model's panel as `-m MODEL` (the single-model path) draws it; made once, networks load slowly."""
    folder = tmp_path_factory.mktemp("singles")
    found = {}
    for model in ("bicubic", "lanczos", "span-x2"):
        out = folder / f"{model}.png"
        assert main(["compare", str(BUNNY), str(out), *CROP, "-m", model]) == 0
        found[model] = _panel(read_picture(out).pixels, 1)
    return found


@pytest.mark.parametrize("models", ["span-x2,lanczos", "bicubic,lanczos,span-x2"])
def test_each_panel_is_what_its_model_gives_alone(tmp_path: Path, models: str,
                                                  singles: dict[str, np.ndarray]) -> None:
    out = tmp_path / "cmp.png"
    assert main(["compare", str(BUNNY), str(out), *CROP, "--models", models]) == 0
    canvas = read_picture(out).pixels
    names = models.split(",")
    assert canvas.shape[:2] == (2 * H + LABEL_BAR, (1 + len(names)) * (2 * W + GAP) - GAP)  # one row
    bicubic = _panel(canvas, 0)
    for i, name in enumerate(names, start=1):
        assert np.array_equal(_panel(canvas, i), singles[name]), name
        assert (canvas[:LABEL_BAR, i * (2 * W + GAP):][:, :2 * W] > 200).sum() > 20  # a label drawn
    assert not np.array_equal(_panel(canvas, names.index("lanczos") + 1), bicubic)
    if "bicubic" in names:
        assert np.array_equal(_panel(canvas, names.index("bicubic") + 1), bicubic)


def test_wide_results_wrap_into_a_grid(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                       singles: dict[str, np.ndarray]) -> None:
    monkeypatch.setattr(cmp, "MAX_ROW", 200)  # room for 2 of the 80 px panels, not 3
    out = tmp_path / "grid.png"
    assert main(["compare", str(BUNNY), str(out), *CROP, "--models", "lanczos,bicubic"]) == 0
    canvas = read_picture(out).pixels
    assert canvas.shape[:2] == (2 * (2 * H + LABEL_BAR) + GAP, 2 * (2 * W) + GAP)  # 2 + 1
    assert np.array_equal(_panel(canvas, 1, cols=2), singles["lanczos"])
    assert np.array_equal(_panel(canvas, 2, cols=2), singles["bicubic"])
    assert (_panel(canvas, 3, cols=2) == cmp.BACKGROUND).all()  # the empty cell


def test_grid_columns() -> None:
    assert cmp.grid_columns(2, 5000) == 2  # a pair stays side by side, however wide
    assert cmp.grid_columns(5, 100) == 5
    assert cmp.grid_columns(5, 1000) == 3  # 3 + 2, not 4 + 1
    assert cmp.grid_columns(4, 1500) == 2
    assert cmp.grid_columns(3, 3000) == 2


def test_html_page_holds_every_result_and_the_selects(tmp_path: Path) -> None:
    out = tmp_path / "cmp.html"
    assert main(["compare", str(BUNNY), str(out), *CROP, "--models", "span-x2,lanczos,bicubic"]) == 0
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 4
    for side, default in (("left", "bicubic"), ("right", "span-x2")):
        select = re.search(rf'<select id="{side}">(.*?)</select>', page).group(1)
        assert re.findall(r">([^<]+)</option>", select) == ["bicubic", "span-x2", "lanczos", "bicubic"]
        assert re.search(r'selected>([^<]+)<', select).group(1) == default
    assert '<select id="zoom">' in page and "pixelated" in page and 'type="range"' in page
    assert not re.search(r"(src|href)=\"(http|//)", page) and "<link" not in page and "@import" not in page


def test_models_and_m_are_exclusive(tmp_path: Path) -> None:
    run = ["compare", str(BUNNY), str(tmp_path / "c.png")]
    assert main([*run, "-m", "lanczos", "--models", "bicubic,lanczos"]) == 2
    assert main([*run, "--models", "bicubic,lanczos,span-x2,lanczos+x,span-x4"]) == 2  # five
    assert main([*run, "--models", "lanczos,,bicubic"]) == 2
    assert not list(tmp_path.iterdir())


def test_unknown_model_is_refused_before_any_work(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model loaded before every name was checked")

    monkeypatch.setattr(Upscaler, "__init__", no_loading)
    for output in ("c.png", "c.html", "c.mp4"):
        assert main(["compare", str(BUNNY), str(tmp_path / output), "--models", "lanczos,no-such-model"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "no-such-model" in err[0] and err[0].startswith("vidscale: error: ")
    assert not list(tmp_path.iterdir())


def test_names_split_on_commas_only() -> None:
    chain = "fbcnn.pth+realesrgan-x4plus"
    assert cmp.parse_models(None, f"{chain}, lanczos") == [chain, "lanczos"]
    assert cmp.parse_models("span-x2", None) == ["span-x2"]
    assert cmp.parse_models(None, None) == [None]
    assert cmp.parse_models(None, "lanczos,lanczos") == ["lanczos"]  # a repeat adds nothing
    with pytest.raises(ModelError, match="nope"):
        cmp.check_models(["lanczos", "span-x2+nope"])
    with pytest.raises(UsageError):
        cmp.parse_models("lanczos", "bicubic")


def test_video_frame_and_clip_with_two_models(tmp_path: Path) -> None:
    src = make_video(tmp_path / "v.mp4", VideoSpec(width=32, height=24, frames=8, audio=None))
    singles = []
    for model in ("lanczos", "span-x2"):
        out = tmp_path / f"{model}.png"
        assert main(["compare", str(src), str(out), "--at", "0.1", "-m", model]) == 0
        singles.append(read_picture(out).pixels)
    out = tmp_path / "f.png"
    assert main(["compare", str(src), str(out), "--at", "0.1", "--models", "lanczos,span-x2"]) == 0
    frame = read_picture(out).pixels
    assert frame.shape[:2] == (48 + LABEL_BAR, 3 * 64 + 2 * GAP)
    assert np.array_equal(_panel(frame, 0, 64, 48), _panel(singles[0], 0, 64, 48))  # bicubic
    for i, single in enumerate(singles, start=1):
        assert np.array_equal(_panel(frame, i, 64, 48), _panel(single, 1, 64, 48))

    clip = tmp_path / "clip.mp4"
    assert main(["compare", str(src), str(clip), "--at", "0.1", "--duration", "0.1",
                 "--models", "lanczos,bicubic"]) == 0
    with av.open(str(clip)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert 3 <= len(frames) <= 5 and frames[0].shape[:2] == (48 + LABEL_BAR, 3 * 64 + 2 * GAP)
    later = tmp_path / "later.png"
    assert main(["compare", str(src), str(later), "--at", "0.2", "-m", "lanczos"]) == 0
    first = _panel(frames[0], 1, 64, 48).astype(int)  # the clip is lossy: nearest, not equal
    other = _panel(read_picture(later).pixels, 1, 64, 48)
    assert np.abs(first - _panel(frame, 1, 64, 48)).mean() < np.abs(first - other).mean()


def test_clip_too_large_to_encode_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    src = make_video(tmp_path / "v.mp4", VideoSpec(width=32, height=24, frames=2, audio=None))
    monkeypatch.setattr(cmp, "MAX_CLIP_SIDE", 150)
    assert main(["compare", str(src), str(tmp_path / "c.mp4"), "--models", "lanczos,bicubic"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--crop" in err
    assert main(["compare", str(src), str(tmp_path / "c.png"), "--models", "lanczos,bicubic"]) == 0  # no cap


def test_long_labels_stay_inside_their_panel() -> None:
    black = np.zeros((20, 40, 3), np.uint8)
    results = [("bicubic", black), ("a-very-long-model-name+another", black)]
    canvas = cmp.grid_image(results)
    assert (canvas[:LABEL_BAR, 40:40 + GAP] == cmp.BACKGROUND).all()  # nothing drawn over the gap


def test_odd_sized_clip_is_padded_even(tmp_path: Path) -> None:
    src = make_video(tmp_path / "v.mp4", VideoSpec(width=32, height=24, frames=2, audio=None))
    clip = tmp_path / "c.mp4"
    assert main(["compare", str(src), str(clip), "--crop", "0,0,15,11", "--duration", "0",
                 "--models", "lanczos,bicubic"]) == 0
    with av.open(str(clip)) as c:
        frame = next(c.decode(video=0))
    assert (frame.height, frame.width) == (22 + LABEL_BAR, 3 * 30 + 2 * GAP)

