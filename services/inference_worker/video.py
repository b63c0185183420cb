"""Video frames for detection (PyAV, which carries its own FFmpeg: no system ffmpeg).

Frames are sampled at a rate (frames per second of video time, 0: every frame)
and handed on as RGB images with their index and timestamp; a video is read once,
streaming, so a long one needs the memory of a few frames only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from shared.errors import InputError


@dataclass(frozen=True)
class Frame:
    index: int  # the frame's number in the video, from 0
    time: float  # seconds from the start
    image: Image.Image


def frames(
    path: Path, uri: str, *, rate: float, max_frames: int, max_pixels: int, line: int | None = None
) -> Iterator[Frame]:
    """The sampled frames of the video at `path`; `InputError` names the video and frame."""
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise InputError(uri, f"cannot be opened as a video: {exc}", line=line) from None
    with container:
        if not container.streams.video:
            raise InputError(uri, "the video has no frames (it has no video stream)", line=line)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if stream.width * stream.height > max_pixels:
            raise InputError(
                uri,
                f"the frames are {stream.width}x{stream.height} pixels, over the "
                f"{max_pixels}-pixel limit (BYOM_MAX_IMAGE_PIXELS)",
                line=line,
            )
        fallback_rate = float(stream.average_rate or 25)
        index, sampled, due = -1, 0, 0.0
        try:
            for frame in container.decode(stream):
                index += 1
                time = float(frame.time) if frame.time is not None else index / fallback_rate
                if rate and time + 1e-6 < due:
                    continue
                if sampled >= max_frames:
                    raise InputError(
                        uri,
                        f"more than {max_frames} frames to detect (BYOM_MAX_VIDEO_FRAMES); "
                        "lower byom-frame-rate or split the video",
                        line=line,
                    )
                sampled += 1
                due = sampled / rate if rate else 0.0
                yield Frame(index=index, time=round(time, 6), image=frame.to_image())  # type: ignore[no-untyped-call]
        except av.FFmpegError as exc:
            raise InputError(
                uri, f"frame {index + 1} cannot be decoded: {exc}", line=line
            ) from None
        if index < 0:
            raise InputError(uri, "the video has no frames", line=line)


class AnnotatedVideo:
    """Drawn frames encoded as they come (MPEG-4 at the sampling rate): a long video
    needs the memory of one frame, not of all of them."""

    def __init__(self, path: Path, rate: float) -> None:
        self.path, self.rate = path, rate
        self.frames = 0
        self._out: Any = None
        self._stream: Any = None

    def add(self, image: Image.Image) -> None:
        import av

        if self._out is None:
            self._out = av.open(str(self.path), "w", format="mp4")
            self._stream = self._out.add_stream("mpeg4", rate=max(1, round(self.rate or 25)))
            self._stream.width = image.width - image.width % 2  # yuv420p: even sizes
            self._stream.height = image.height - image.height % 2
            self._stream.pix_fmt = "yuv420p"
        cropped = image.crop((0, 0, self._stream.width, self._stream.height))
        frame = av.VideoFrame.from_image(cropped)  # type: ignore[no-untyped-call]
        for packet in self._stream.encode(frame):
            self._out.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._out is None:
            return
        for packet in self._stream.encode():
            self._out.mux(packet)
        self._out.close()
        self._out = None
