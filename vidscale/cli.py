"""The `vidscale` command line.

`vidscale IN OUT [options]` upscales (the `upscale` command is implied);
`vidscale models`, `vidscale models import` and `vidscale eval` are the
other commands. Expected failures print one line and exit 1 (bad input) or
2 (bad usage); `--verbose` adds the traceback.

Keep module level light: import what a command needs inside the command, so
that `vidscale --help`, `--version` and every command's `--help` answer
without loading PyTorch (tests/test_cli_help.py checks every command, and
that each one's help carries an example: pass `epilog=_example(...)`).
"""

from __future__ import annotations

import logging
import signal
import sys
import traceback
from pathlib import Path

import click

from vidscale import options
from vidscale.core.settings import DEFAULT_TEMPORAL
from vidscale.core.version import __version__
from vidscale.errors import UsageError, VidscaleError
from vidscale.signals import Terminated, stop_on_sigterm

log = logging.getLogger("vidscale")


def _example(*lines: str) -> str:
    """A command's help epilog: example command lines, printed as written."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


class _DefaultToUpscale(click.Group):
    """Treat `vidscale IN OUT` as `vidscale upscale IN OUT`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["upscale", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultToUpscale, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vidscale")
def cli() -> None:
    """Upscale video, image sequences and photos with super-resolution networks.

    \b
    vidscale in.mp4 out.mp4 --scale 2
    vidscale photos/ big/ --scale 4
    vidscale models
    vidscale eval HR_DIR --lr LR_DIR --scale 2
    """


def _model_options(f):  # type: ignore[no-untyped-def]
    f = click.option("--denoise", metavar="LEVEL", help="Denoise variant of a model family that has them "
                     "(realcugan, realcugan-pro): none, conservative (the default), 1, 2 or 3.")(f)
    f = click.option("--precision", type=options.PRECISION,
                     default="auto", show_default=True,
                     help="Compute type; auto: fp16 on CUDA when the model supports it; on the CPU bf16 for "
                          "the built-ins that keep their picture in it where the CPU has native bf16 "
                          "(AVX512-BF16, AMX), else fp32.")(f)
    f = click.option("--tile", type=options.TILE, help="Tile size in input pixels (default: from free memory).")(f)
    f = click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")(f)
    f = click.option("--backend", type=options.BACKEND, default="auto", show_default=True,
                     help="auto: TensorRT, else CUDA, else CPU; torch: PyTorch on --device.")(f)
    f = click.option("--model", "-m", help="Built-in or user model name, a model file, a chain a+b "
                     "(e.g. a 1x cleanup model, then an upscaler), or bicubic/lanczos.")(f)
    return f


_max_pixels_option = click.option(
    "--max-pixels", metavar="IN[,OUT]", help="Largest frame to read and to write, in pixels "
    "(default 100M,400M; OUT defaults to 4 x IN); e.g. 300M or 300M,1.2G.")
_SEGMENT_HELP = "segment length, in seconds (20, 20s) or frames (500f); 0: one segment."


def _segment_options(f):  # type: ignore[no-untyped-def]
    """How a video file job is cut, resumed and spread (vidscale/segments/)."""
    f = click.option("--segment", metavar="LENGTH",
                     help=f"Video: {_SEGMENT_HELP} "
                     "Finished segments survive an interruption: rerun the same command to resume.")(f)
    f = click.option("--fresh", is_flag=True, help="Discard an unfinished earlier run's segments.")(f)
    f = click.option("--workers", type=click.IntRange(min=1),
                     help="Video: run segments in N processes (default: one per GPU, else one).")(f)
    f = click.option("--ray", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
                     help="Video: run segments on Ray: a local instance, or the cluster at ADDRESS.")(f)
    return f


@cli.command(epilog=_example("vidscale in.mp4 out.mp4 --scale 2 --crf 16",
                             "vidscale in.mp4 part.mp4 --start 1:23.5 --frames 240",
                             "vidscale photos/ big/ --scale 4 -r --format jpg",
                             "vidscale \"frames/%04d.png\" out.mp4 --fps 25 -m span-x2"))
@click.argument("source")
@click.argument("output")
@click.option("--scale", "-s", type=float, help="Factor between 1 and 8 (default: a named model's own, else 2).")
@click.option("--width", type=options.SIZE, help="Output width (height follows unless given).")
@click.option("--height", type=options.SIZE, help="Output height (width follows unless given).")
@_model_options
@click.option("--batch", type=options.BATCH, default=1, show_default=True, help="Frames per inference batch.")
@click.option("--frames", type=options.FRAMES, help="Only the first N frames (video, animation) or files (numbered sequence, glob, folder).")
@click.option("--start", metavar="TIME|FRAME", help="Begin at a time from the first frame (83.5, 83.5s, 1:23.5, "
              "00:01:23.500) or a frame number (200f, from 0); the output's times start at 0 and the audio, "
              "subtitles and chapters follow. Sequences skip that many files; with --frames N, N frames from there.")
@click.option("--device-color/--host-color", default=None,
              help="Video YUV<->RGB on the inference device, or in swscale on the CPU (default: device on CUDA).")
@click.option("--temporal", type=options.TEMPORAL, is_flag=False, flag_value=DEFAULT_TEMPORAL, default=None,
              metavar="[STRENGTH]", help="Anti-flicker pass: blends the motion-compensated previous output "
              f"where the low-res frames agree; STRENGTH 0-1 ({DEFAULT_TEMPORAL:g} when given alone).")
@click.option("--skip-repeats/--no-skip-repeats", default=True, show_default=True,
              help="A frame equal to the previous one reuses its upscale (the anti-flicker pass and the "
              "encoder still see every frame; the output is the same).")
@click.option("--repeat-threshold", type=options.REPEAT_THRESHOLD, metavar="LEVELS",
              help="Also reuse the upscale of near-repeats: frames no 16x16 block of which differs from the "
              "last frame upscaled by more than LEVELS 8-bit code values on average, their mean moving by "
              "at most a quarter level (fades are changes). Default 0: exact repeats only. Measured "
              "invisible up to 8 on held anime drawings, repeated film frames and a fade.")
@click.option("--recursive", "-r", is_flag=True, help="Walk subfolders of a folder input (the output mirrors them).")
@click.option("--format", type=options.FORMAT,
              help="Image type for folder outputs (default: keep each input's).")
@click.option("--fps", default="24", show_default=True, help="Frame rate when images become a video.")
@click.option("--codec", help="Video encoder (default: libx264; libx265 for >8-bit; libsvtav1 for webm).")
@click.option("--crf", type=float, help="Constant-quality level of the encoder.")
@click.option("--encoder-preset", help="Encoder speed preset (e.g. slow, medium, veryfast; 0-13 for SVT-AV1).")
@click.option("--pix-fmt", help="Output pixel format (default: the source's).")
@click.option("--encoder-opt", multiple=True, metavar="KEY=VALUE", help="Extra encoder option (repeatable).")
@click.option("--quality", type=options.QUALITY, help="Quality of lossy image outputs: JPEG, WebP, AVIF "
              "(default: a JPEG source's own, else the format's default).")
@click.option("--background", default="white", show_default=True, metavar="COLOR",
              help="What transparency is flattened onto in outputs that keep none (JPEG, AVIF): "
              "a name or #RRGGBB.")
@click.option("--preset", metavar="NAME|PATH", help="Settings from a preset (`vidscale presets`); flags win.")
@_max_pixels_option
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@click.option("--verbose", "-v", is_flag=True, help="State the plan before starting; show details and tracebacks.")
@click.option("--dry-run", is_flag=True, help="Print the plan with time and size estimates from a short "
              "sample; write nothing.")
@_segment_options
def upscale(source: str, output: str, verbose: bool, **values: object) -> None:
    """Upscale SOURCE (video, image, folder, pattern or glob) into OUTPUT."""
    from vidscale.job import run_job

    _setup_logging(bool(values["quiet"]), verbose)
    ctx = click.get_current_context()
    given = {k: v for k, v in values.items()
             if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE}
    settings = options.job_settings(given, output)
    summary = run_job(source, output, settings)
    log.info("%s", summary.line())
    if summary.failed:
        raise VidscaleError(f"{summary.failed} of {summary.inputs} inputs failed (named above)")


@cli.command(epilog=_example("vidscale compare photo.jpg cmp.html -m span-x2",
                             "vidscale compare photo.jpg cmp.png --models span-x2,lanczos --crop 100,80,200,150",
                             "vidscale compare in.mp4 cmp.mp4 --at 12.5 --duration 3"))
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--scale", "-s", type=float, default=2.0, show_default=True, help="Factor between 1 and 8.")
@_model_options
@click.option("--models", metavar="A,B[,C]", help="Up to 4 models (comma-separated, as -m takes them), "
              "each shown beside bicubic.")
@click.option("--crop", help="X,Y,W,H region of the input to compare (input pixels).")
@click.option("--at", "at_s", type=click.FloatRange(min=0), default=0.0, help="Video: time in seconds.")
@click.option("--duration", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Video output: length of the side-by-side clip in seconds.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
def compare(source: Path, output: Path, scale: float, model: str | None, models: str | None, backend: str,
            device: str, tile: int | None, precision: str, denoise: str | None, crop: str | None, at_s: float,
            duration: float, overwrite: bool) -> None:
    """Bicubic next to the network(s): an image, an .html slider page, or a video clip."""
    from vidscale import compare as cmp
    from vidscale.media.image import is_image_path
    from vidscale.scale import check_scale
    from vidscale.upscaler import Upscaler

    check_scale(scale)
    names = cmp.parse_models(model, models)
    box = cmp.parse_crop(crop)
    if not source.exists():
        raise VidscaleError(f"{source}: no such file")
    cmp.check_models(names)  # every name, before any model loads or output starts
    purpose = "photo" if is_image_path(source) else "video"  # the default model the real run would use

    def make(name: str | None) -> Upscaler:
        return Upscaler(name, device, tile=tile, precision=precision, backend=backend, denoise=denoise,
                        purpose=purpose)

    click.echo(cmp.compare(source, output, scale, names, make, box, at_s, duration, overwrite))


@cli.command(epilog=_example("vidscale bench in.mp4 --frames 48 --batch 2 -m span-x2",
                             "vidscale bench --synthetic 1920x1080 --backend cuda --json"))
@click.argument("source", required=False, type=click.Path(path_type=Path))
@click.option("--synthetic", metavar="WxH", help="Measure on a generated clip of this size instead of SOURCE.")
@click.option("--frames", type=click.IntRange(min=2), default=48, show_default=True)
@click.option("--scale", "-s", type=float, default=2.0, show_default=True)
@click.option("--model", "-m", help="Model (default: the video default, as a video job runs).")
@click.option("--backend", type=click.Choice(["auto", "tensorrt", "cuda", "cpu", "torch"], case_sensitive=False),
              default="auto", show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp16", "bf16", "fp32"], case_sensitive=False),
              default="auto", show_default=True)
@click.option("--batch", type=click.IntRange(1, 256), default=1, show_default=True)
@click.option("--device-color/--host-color", default=None,
              help="YUV<->RGB on the inference device or in swscale on the host (default: device on CUDA).")
@click.option("--codec", help="Video encoder for the encode stage and the pipeline.")
@click.option("--encoder-preset", "preset", help="Encoder speed preset.")
@click.option("--temporal", type=click.FloatRange(0, 1), is_flag=False, flag_value=DEFAULT_TEMPORAL, default=None,
              metavar="[STRENGTH]", help="Also time the anti-flicker pass (and run the pipeline with it).")
@click.option("--rounds", type=click.IntRange(1, 20), default=3, show_default=True,
              help="Time inference alone and the pipeline in turn this many times; each counts its fastest "
                   "(others' work on a shared machine only adds time, and comes and goes between the two).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def bench(source: Path | None, synthetic: str | None, frames: int, scale: float, model: str | None,
          backend: str, device: str, precision: str, batch: int, codec: str | None, preset: str | None,
          temporal: float | None, device_color: bool | None, rounds: int, as_json: bool) -> None:
    """Each stage alone (decode, upload, infer, download, encode), then the whole pipeline."""
    import tempfile

    from vidscale.bench import run_bench, synthetic_clip
    from vidscale.core.settings import EncoderSettings, JobSettings
    from vidscale.scale import check_scale

    check_scale(scale)
    encoder = EncoderSettings(codec=codec, preset=preset)
    with tempfile.TemporaryDirectory(prefix="vidscale-bench-src-") as tmp:
        if synthetic:
            try:
                width, height = (int(v) for v in synthetic.lower().split("x"))
            except ValueError:
                raise UsageError(f"--synthetic {synthetic}: expected WIDTHxHEIGHT") from None
            source = synthetic_clip(Path(tmp), width, height, frames)
        elif source is None:
            raise UsageError("give a SOURCE video or --synthetic WxH")
        elif not source.is_file():
            raise VidscaleError(f"{source}: no such file")
        settings = JobSettings(scale=scale, model=model, backend=backend, device=device, precision=precision,
                               batch=batch, encoder=encoder, max_frames=frames, temporal=temporal,
                               device_color=device_color, skip_repeats=False)  # every frame costs its work
        result = run_bench(source, settings, rounds)
    click.echo(result.to_json() if as_json else result.table())


@cli.command("presets", epilog=_example("vidscale presets", "vidscale in.mkv out.mkv --preset anime"))
def list_presets() -> None:
    """List the built-in presets."""
    from vidscale.presets import builtin_presets

    presets = builtin_presets()
    width = max(len(name) for name in presets)
    for name, preset in presets.items():
        click.echo(f"{name.ljust(width)}  {preset.description}")


@cli.command(epilog=_example("vidscale serve --open",
                             "vidscale serve --port 9000 --out ~/Pictures/upscaled"))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8640, show_default=True, help="Port (0: any free one).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default="vidscale-results",
              show_default=True, help="Folder the results are kept in.")
@click.option("--allow-remote", is_flag=True, help="Allow a --host that other machines can reach (no login!).")
@_max_pixels_option
@click.option("--segment", metavar="LENGTH", help=f"Video jobs: {_SEGMENT_HELP} Finished segments survive "
              "a stop of the server: the next one on the same --out continues its unfinished jobs.")
@click.option("--release-after", "release_after", type=click.FloatRange(0), default=60, show_default=True,
              metavar="SECONDS", help="Give memory back to the system once no job has run for this long.")
def serve(host: str, port: int, open_browser: bool, out_dir: Path, allow_remote: bool, max_pixels: str | None,
          segment: str | None, release_after: float) -> None:
    """A local web page: drop pictures or a video, pick a size and model, compare, download."""
    try:  # the web extra is optional; imported here so that other commands never load it
        from vidscale.web.serve import serve as run_server
        from vidscale.web.uploads import Limits
    except ImportError as exc:
        raise UsageError(f"vidscale serve needs the web extra: pip install 'vidscale[web]' ({exc})") from None
    from vidscale.core.limits import DEFAULT_LIMITS, parse_max_pixels

    _setup_logging(quiet=False, verbose=False)
    limits = Limits(pixels=parse_max_pixels(max_pixels) if max_pixels else DEFAULT_LIMITS)
    run_server(host, port, out_dir, open_browser, allow_remote,
               announce=lambda line: click.echo(line, err=True), limits=limits, segment=segment,
               release_after_s=release_after)


@cli.group(invoke_without_command=True, epilog=_example("vidscale models",
                                                        "vidscale models import 2x-foo.param --name foo"))
@click.pass_context
def models(ctx: click.Context) -> None:
    """List the models (built-in, user folder, resizers)."""
    if ctx.invoked_subcommand is None:
        _list_models()


def _list_models() -> None:
    from vidscale.models import zoo

    rows = [("name", "arch", "scale", "params", "for", "license", "source")]
    for info in zoo.builtins().values():
        rows.append((info.name, info.arch, f"x{info.scale}", f"{info.params:,}", info.use or "-", info.license,
                     info.source))
    for family, members in zoo.families().items():
        levels = "/".join(zoo.family_levels(family))
        scales = "/".join(f"x{s}" for s in zoo.family_scales(family))
        rows.append((family, members[0].arch, scales, "-", members[0].use or "-", members[0].license,
                     "picks by --scale" + (f" and --denoise {levels}" if levels else "")))
    for info in zoo.user_models().values():
        try:
            arch, scale, params = _describe_file(info.path)  # type: ignore[arg-type]
        except VidscaleError as exc:
            arch, scale, params = f"unreadable ({exc})", "-", "-"
        rows.append((info.name, arch, scale, params, "-", "user", str(info.path)))
    for name in zoo.CLASSIC:
        rows.append((name, "resize", "any", "0", "-", "-", "-"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    click.echo(f"\nuser models folder: {zoo.user_model_dir()}")


def _describe_file(path: Path) -> tuple[str, str, str]:
    """(architecture, scale, parameters) of a user's model file, for the listing."""
    from vidscale.models import onnx_file
    from vidscale.models.loading import file_scale, inference_parameter_count, load_descriptor

    if onnx_file.is_onnx(path):
        graph = onnx_file.checked(path)
        return "ONNX graph", f"x{graph.scale}", f"{onnx_file.parameter_count(graph):,}"
    desc = load_descriptor(path)
    return desc.architecture.name, f"x{file_scale(path, desc.scale)}", f"{inference_parameter_count(desc.model):,}"


@models.command("import", epilog=_example("vidscale models import 2x-foo.param --name foo",
                                           "vidscale models import 4x-bar.pth"))
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", help="Name to list it under (default: the file's stem).")
@click.option("--overwrite", is_flag=True, help="Replace a user model of the same name.")
def import_model(path: Path, name: str | None, overwrite: bool) -> None:
    """Convert a model file (ncnn .param/.bin, .pth, .safetensors...) into a user model;
    an ONNX file is checked and kept as it is."""
    from vidscale.models import onnx_file, zoo

    name = name or path.stem
    if name in zoo.builtins() or name.lower() in zoo.CLASSIC or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise UsageError(f"{name!r}: not usable as a model name (taken or has odd characters)")
    existing = zoo.user_models().get(name)
    if existing is not None and not overwrite:
        raise UsageError(f"{name!r}: a user model of that name exists ({existing.path}); --overwrite replaces it")
    folder = zoo.user_model_dir()  # made when the file is written: a failed import leaves none
    target = (_import_onnx if onnx_file.is_onnx(path) else _import_weights)(path, name, folder)
    if existing is not None and existing.path != target:
        existing.path.unlink(missing_ok=True)  # type: ignore[union-attr]  # the one it replaces, of another type


def _import_weights(path: Path, name: str, folder: Path) -> Path:
    """Weights of any readable kind become one safetensors file (with its file scale)."""
    from safetensors.torch import save_file

    from vidscale.media.atomic import atomic_output, making_folder
    from vidscale.models.loading import (
        FILE_SCALE_KEY,
        descriptor_from_state_dict,
        file_scale,
        read_state_dict,
    )

    state = read_state_dict(path)
    desc = descriptor_from_state_dict(state, str(path))
    tensors = {k: v.contiguous() for k, v in state.items()}
    scale = file_scale(path, desc.scale)
    metadata = {"name": name, "arch": desc.architecture.id, "scale": str(desc.scale), "source": path.name}
    how = ""
    if scale != desc.scale:  # e.g. an x4 network whose graph then resizes by 0.5
        metadata[FILE_SCALE_KEY] = str(scale)
        how = f" (an x{desc.scale} network, then a resize, as the file does)"
    target = folder / f"{name}.safetensors"
    with (making_folder(folder, target, parents=True),
          atomic_output(target, overwrite=True, inputs=[path]) as tmp):
        save_file(tensors, str(tmp), metadata=metadata)
    click.echo(f"imported {name}: {desc.architecture.name} x{scale}{how} -> {target}")
    return target


def _import_onnx(path: Path, name: str, folder: Path) -> Path:
    """An ONNX file is kept as it is (it runs on OpenVINO or onnxruntime), once it has been checked."""
    from vidscale.media.atomic import atomic_output, making_folder
    from vidscale.models import onnx_file

    graph = onnx_file.checked(path)
    target = folder / f"{name}{onnx_file.ONNX_SUFFIX}"
    with (making_folder(folder, target, parents=True),
          atomic_output(target, overwrite=True, inputs=[path]) as tmp):
        tmp.write_bytes(graph.graph)
    click.echo(f"imported {name}: ONNX graph x{graph.scale} (runs on the CPU through OpenVINO or onnxruntime) -> {target}")
    return target


@models.command("export", epilog=_example("vidscale models export span-x2 span.onnx",
                                           "vidscale models export realesrgan-x4plus esrgan.onnx --fp16"))
@click.argument("name")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--opset", type=click.IntRange(13, 21), default=17, show_default=True, help="ONNX opset.")
@click.option("--fp16", is_flag=True, help="Compute in half precision inside; input and output stay float32.")
@click.option("--overwrite", is_flag=True, help="Replace an existing file.")
def export_model(name: str, out: Path, opset: int, fp16: bool, overwrite: bool) -> None:
    """Export NAME to ONNX: float32 NCHW RGB in [0, 1], dynamic batch/height/width."""
    from vidscale.engine.onnx_export import export_onnx

    export_onnx(name, out, opset=opset, fp16=fp16, overwrite=overwrite)
    click.echo(f"{out}: opset {opset}; input 'input' (N,3,H,W), output 'output' (N,3,H*s,W*s)")


@cli.command("eval", epilog=_example("vidscale eval set5/ --scale 2 -m span-x2",
                                     "vidscale eval HR/ --lr LR/ --scale 4 --json",
                                     "vidscale eval HR/ --scale 2 --degrade web --save-lr lr-web/"))
@click.argument("hr_dir", type=click.Path(path_type=Path))
@click.option("--lr", "lr_dir", type=click.Path(path_type=Path), help="Low-res inputs (default: bicubic downscales of HR).")
@click.option("--scale", "-s", type=click.IntRange(2, 8), required=True, help="Integer scale of the pairs.")
@click.option("--degrade", "degrade_spec", metavar="SPEC",
              help="Damage the generated inputs after the downscale: a preset (mild, web, none) and/or "
              "blur=SIGMA,noise=SIGMA,jpeg=QUALITY (applied in that order), e.g. web or blur=0.8,jpeg=50.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Noise seed for --degrade (each image also mixes in its name).")
@click.option("--save-lr", "save_lr", type=click.Path(path_type=Path), metavar="DIR",
              help="Keep the generated inputs as PNG in DIR (reusable with --lr).")
@click.option("--overwrite", is_flag=True, help="Replace images already in the --save-lr folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of a table.")
@_model_options
def eval_cmd(hr_dir: Path, lr_dir: Path | None, scale: int, degrade_spec: str | None, seed: int,
             save_lr: Path | None, overwrite: bool, as_json: bool, model: str | None, backend: str,
             device: str, tile: int | None, precision: str, denoise: str | None) -> None:
    """Scores of a model against ground truth in HR_DIR, beside bicubic.

    Y-PSNR, SSIM, MS-SSIM, HaarPSI and JPEG blockiness; inputs are --lr's images
    or bicubic downscales of HR_DIR, optionally --degrade'd.
    """
    import json

    from vidscale.degrade import parse_degradation
    from vidscale.evaluate import evaluate, format_table, pair_images
    from vidscale.upscaler import Upscaler

    # Settle the command line before loading images or a model.
    if lr_dir is not None and (degrade_spec is not None or save_lr is not None):
        raise UsageError(f"{'--degrade' if degrade_spec is not None else '--save-lr'} makes the inputs "
                         "from the ground truth; it cannot be used with --lr")
    degradation = parse_degradation(degrade_spec) if degrade_spec is not None else None
    pairs = pair_images(hr_dir, lr_dir, scale)
    upscaler = Upscaler(model, device, tile=tile, precision=precision, backend=backend, denoise=denoise)
    result = evaluate(pairs, scale, upscaler, degrade=degradation, seed=seed, save_lr=save_lr,
                      overwrite=overwrite)
    if as_json:
        data = {"hr_dir": str(hr_dir), "lr_dir": None if lr_dir is None else str(lr_dir), **result.to_dict()}
        click.echo(json.dumps(data, indent=2, allow_nan=False))
    else:
        click.echo(format_table(result))


def _setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr, force=True)
    for noisy in ("torch", "spandrel"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    verbose = "--verbose" in args or "-v" in args
    previous = stop_on_sigterm()
    try:
        return _run_main(args, verbose)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)  # type: ignore[arg-type]


def _run_main(args: list[str], verbose: bool) -> int:
    try:
        cli.main(args=args, prog_name="vidscale", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort) as exc:
        if isinstance(exc, Terminated) or isinstance(exc.__context__, Terminated):  # click wraps it in Abort
            click.echo("vidscale: terminated", err=True)
            return 143
        click.echo("vidscale: interrupted", err=True)
        return 130
    except VidscaleError as exc:
        if verbose:
            traceback.print_exc()
        click.echo(f"vidscale: error: {exc}", err=True)
        return exc.exit_code
    except Exception as exc:  # a bug: still one line unless asked for details
        if verbose:
            traceback.print_exc()
        click.echo(f"vidscale: internal error: {type(exc).__name__}: {exc} (rerun with --verbose)", err=True)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
