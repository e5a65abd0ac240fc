"""The workloads every peer runs on every corpus JPEG, and the output size each one implies."""

from __future__ import annotations

from dataclasses import dataclass

QUALITY = 80


@dataclass(frozen=True, slots=True)
class Workload:
    """Fit inside width x height (height None: width only, aspect kept); never upscale."""

    name: str
    width: int
    height: int | None
    format: str  # "jpeg" or "webp"
    quality: int = QUALITY

    @property
    def extension(self) -> str:
        return "jpg" if self.format == "jpeg" else self.format

    def target_size(self, display_width: int, display_height: int) -> tuple[int, int]:
        """Nominal output size for a source of this displayed size (peers may round by a pixel)."""
        scale = self.width / display_width
        if self.height is not None:
            scale = min(scale, self.height / display_height)
        scale = min(scale, 1.0)
        return max(1, round(display_width * scale)), max(1, round(display_height * scale))

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "quality": self.quality,
        }


WORKLOADS: tuple[Workload, ...] = (
    Workload("thumb200", 200, 200, "jpeg"),
    Workload("w800", 800, None, "jpeg"),
    Workload("w1920", 1920, None, "jpeg"),
    Workload("webp800", 800, None, "webp"),
)


def by_name(names: list[str]) -> list[Workload]:
    known = {w.name: w for w in WORKLOADS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in names]
