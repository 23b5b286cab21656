"""DVC stage `weights`: pretrained VGG16 and FID Inception, or their random-init provenance, and the
released weights a profile names (`models.<name>.released`)."""

from pathlib import Path

from fgi.stage import run_stage
from fgi.data.released import fetch_released
from fgi.data.weights import fetch_weights, provenance_tag

OUT = Path("data/weights")


def body(params, run):
    # The releases first: asked for by name, a missing one stops the stage before anything else.
    released = fetch_released(params, OUT)
    provenance = fetch_weights(params, OUT, released)
    run.set_tags({"weights_provenance": provenance_tag(OUT)})
    return {name: entry["status"] for name, entry in provenance.items()}


if __name__ == "__main__":
    run_stage(body, sections=("weights",))
