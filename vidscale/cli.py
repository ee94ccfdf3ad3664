"""The `vidscale` command line.

`vidscale IN OUT [options]` upscales (the `upscale` command is implied);
`vidscale models`, `vidscale models import` and `vidscale eval` are the
other commands. Expected failures print one line and exit 1 (bad input) or
2 (bad usage); `--verbose` adds the traceback.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from pathlib import Path

import click

from vidscale import __version__
from vidscale.errors import UsageError, VidscaleError

log = logging.getLogger("vidscale")


class _DefaultToUpscale(click.Group):
    """Treat `vidscale IN OUT` as `vidscale upscale IN OUT`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["upscale", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultToUpscale, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vidscale")
def cli() -> None:
    """Upscale photos (and soon video) with super-resolution networks.

    \b
    vidscale in.png out.png --scale 2
    vidscale models
    vidscale eval HR_DIR --lr LR_DIR --scale 2
    """


def _model_options(f):  # type: ignore[no-untyped-def]
    f = click.option("--fp16/--no-fp16", default=None, help="Half precision (default: on CUDA when the model supports it).")(f)
    f = click.option("--tile", type=click.IntRange(min=32), help="Tile size in input pixels (default: from free memory).")(f)
    f = click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")(f)
    f = click.option("--model", "-m", help="Built-in or user model name, a model file, or bicubic/lanczos.")(f)
    return f


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--scale", "-s", type=float, help="Factor between 1 and 8 (default 2).")
@click.option("--width", type=click.IntRange(min=1), help="Output width (height follows unless given).")
@click.option("--height", type=click.IntRange(min=1), help="Output height (width follows unless given).")
@_model_options
@click.option("--quality", type=click.IntRange(1, 100), help="Quality of lossy outputs (JPEG, WebP).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@click.option("--verbose", "-v", is_flag=True, help="Show details and tracebacks.")
def upscale(source: Path, output: Path, scale: float | None, width: int | None, height: int | None,
            model: str | None, device: str, tile: int | None, fp16: bool | None,
            quality: int | None, overwrite: bool, quiet: bool, verbose: bool) -> None:
    """Upscale SOURCE into OUTPUT."""
    from vidscale.media.atomic import atomic_output
    from vidscale.media.image import is_image_path, read_image, write_image
    from vidscale.scale import output_size
    from vidscale.upscaler import Upscaler, upscale_image

    _setup_logging(quiet, verbose)
    for path in (source, output):
        if not is_image_path(path):
            raise UsageError(f"{path}: not a supported image type (video support is coming)")
    if scale is not None and (width or height):
        raise UsageError("give either --scale or --width/--height, not both")
    started = time.monotonic()
    upscaler = Upscaler(model, device, tile=tile, fp16=fp16)
    image = read_image(source)
    size = output_size(*image.shape[:2], scale, width, height)
    with atomic_output(output, overwrite=overwrite, inputs=[source]) as tmp:
        result = upscale_image(image, width=size[1], height=size[0], upscaler=upscaler)
        write_image(tmp, result, quality=quality)
    log.info("%s: %dx%d -> %dx%d in %.1fs", output, image.shape[1], image.shape[0],
             size[1], size[0], time.monotonic() - started)


@cli.group(invoke_without_command=True)
@click.pass_context
def models(ctx: click.Context) -> None:
    """List the models (built-in, user folder, resizers)."""
    if ctx.invoked_subcommand is None:
        _list_models()


def _list_models() -> None:
    from vidscale.models import zoo
    from vidscale.models.loading import inference_parameter_count, load_descriptor

    rows = [("name", "arch", "scale", "params", "license", "source")]
    for info in zoo.builtins().values():
        rows.append((info.name, info.arch, f"x{info.scale}", f"{info.params:,}", info.license, info.source))
    for info in zoo.user_models().values():
        try:
            desc = load_descriptor(info.path)  # type: ignore[arg-type]
            arch, scale = desc.architecture.name, f"x{desc.scale}"
            params = f"{inference_parameter_count(desc.model):,}"
        except VidscaleError as exc:
            arch, scale, params = f"unreadable ({exc})", "-", "-"
        rows.append((info.name, arch, scale, params, "user", str(info.path)))
    for name in zoo.CLASSIC:
        rows.append((name, "resize", "any", "0", "-", "-"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    click.echo(f"\nuser models folder: {zoo.user_model_dir()}")


@models.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", help="Name to list it under (default: the file's stem).")
@click.option("--overwrite", is_flag=True, help="Replace a user model of the same name.")
def import_model(path: Path, name: str | None, overwrite: bool) -> None:
    """Convert a model file (ncnn .param/.bin, .pth, .safetensors...) into a user model."""
    from safetensors.torch import save_file

    from vidscale.media.atomic import atomic_output
    from vidscale.models import zoo
    from vidscale.models.loading import descriptor_from_state_dict, read_state_dict

    name = name or path.stem
    if name in zoo.builtins() or name.lower() in zoo.CLASSIC or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise UsageError(f"{name!r}: not usable as a model name (taken or has odd characters)")
    state = read_state_dict(path)
    desc = descriptor_from_state_dict(state, str(path))
    folder = zoo.user_model_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in state.items()}
    with atomic_output(folder / f"{name}.safetensors", overwrite=overwrite, inputs=[path]) as tmp:
        save_file(tensors, str(tmp), metadata={"name": name, "arch": desc.architecture.id,
                                               "scale": str(desc.scale), "source": path.name})
    click.echo(f"imported {name}: {desc.architecture.name} x{desc.scale} -> {folder / (name + '.safetensors')}")


@cli.command("eval")
@click.argument("hr_dir", type=click.Path(path_type=Path))
@click.option("--lr", "lr_dir", type=click.Path(path_type=Path), help="Low-res inputs (default: bicubic downscales of HR).")
@click.option("--scale", "-s", type=click.IntRange(2, 8), required=True, help="Integer scale of the pairs.")
@_model_options
def eval_cmd(hr_dir: Path, lr_dir: Path | None, scale: int, model: str | None, device: str,
             tile: int | None, fp16: bool | None) -> None:
    """Y-PSNR/SSIM of a model against ground truth in HR_DIR, beside bicubic."""
    from vidscale.evaluate import evaluate, format_table, pair_images
    from vidscale.models import zoo
    from vidscale.upscaler import Upscaler

    pairs = pair_images(hr_dir, lr_dir, scale)
    upscaler = Upscaler(model, device, tile=tile, fp16=fp16)
    name = model or "+".join(m.name for m in zoo.default_chain(scale))
    click.echo(format_table(evaluate(pairs, scale, upscaler), name))


def _setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr, force=True)
    for noisy in ("torch", "spandrel"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    verbose = "--verbose" in args or "-v" in args
    try:
        cli.main(args=args, prog_name="vidscale", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort):
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
