"""DVC stage `weights`: pretrained VGG16 and FID Inception, or their random-init provenance."""

from pathlib import Path

from fgi.stage import run_stage
from fgi.data.weights import fetch_weights, provenance_tag

OUT = Path("data/weights")


def body(params, run):
    provenance = fetch_weights(params, OUT)
    run.set_tags({"weights_provenance": provenance_tag(OUT)})
    return {name: entry["status"] for name, entry in provenance.items()}


if __name__ == "__main__":
    run_stage(body, sections=("weights",))
