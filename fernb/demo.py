"""`fernb demo`: a live demo in the browser (Gradio, an optional extra: pip install -e ".[demo]").

The webcam stream and uploaded photos take the photo path of fernb.faces: every face boxed and labelled, and the
class probabilities of the largest face as bars (the checkpoint's classes). It serves on 127.0.0.1 unless told
otherwise.
"""
from __future__ import annotations

import numpy as np

from fernb.checkpoint import load_model
from fernb.errors import FernbError
from fernb.evaluate import Predictor
from fernb.faces import annotate, predict_faces

LOCAL = ("127.0.0.1", "localhost", "::1")  # addresses only this computer reaches


def label_frame(model, classes, frame: np.ndarray | None) -> tuple[np.ndarray | None, dict[str, float]]:
    """A frame with its faces boxed and labelled, and the largest face's class probabilities ({} without a face)."""
    if frame is None:
        return None, {}
    faces = predict_faces(model, frame, classes)
    return np.asarray(annotate(frame, faces)), (faces[0]["probs"] if faces else {})


def build(checkpoint: str | None = None, host: str = "127.0.0.1"):
    """The Gradio app: a webcam tab (streamed frames come back labelled) and a photo tab."""
    try:
        import gradio as gr
    except ImportError:
        raise FernbError('the demo needs Gradio: pip install -e ".[demo]" (or pip install gradio)') from None
    model, meta = load_model(checkpoint)
    model = Predictor(model, meta["classes"])  # once, not per streamed frame

    def run(frame):
        return label_frame(model, meta["classes"], frame)

    with gr.Blocks(title="fernb: facial expressions") as app:
        where = ("Frames stay in this computer: the demo serves on this machine only." if host in LOCAL else
                 f"The demo serves on {host}: other computers that reach this one can see it.")
        gr.Markdown(f"# fernb: facial expressions, live\nModel: `{meta['model']}`. Every face found is boxed and "
                    f"labelled; the bars are the largest face's probabilities of its {len(meta['classes'])} classes "
                    f"({', '.join(meta['classes'])}). {where}")
        with gr.Tab("Webcam"):
            with gr.Row():
                cam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="webcam")
                cam_out = gr.Image(type="numpy", label="labelled", elem_id="webcam-labelled")
            cam_bars = gr.Label(num_top_classes=len(meta["classes"]), label="largest face", elem_id="webcam-bars")
            cam.stream(run, inputs=cam, outputs=[cam_out, cam_bars], stream_every=0.2, concurrency_limit=1)
        with gr.Tab("Photo"):
            with gr.Row():
                photo = gr.Image(sources=["upload"], type="numpy", label="photo", elem_id="photo-in")
                photo_out = gr.Image(type="numpy", label="labelled")
            photo_bars = gr.Label(num_top_classes=len(meta["classes"]), label="largest face", elem_id="photo-bars")
            photo.change(run, inputs=photo, outputs=[photo_out, photo_bars])
    return app


def launch(checkpoint: str | None = None, host: str = "127.0.0.1", port: int = 7860, inline: bool = False):
    """Serve the demo (blocking), or show it inside a notebook with inline=True."""
    app = build(checkpoint, host)
    try:
        return app.launch(server_name=host, server_port=port, inline=inline, prevent_thread_lock=inline, quiet=True)
    except OSError as e:  # the port is taken, or the address is not this machine's
        raise FernbError(f"{host}:{port}: cannot serve there ({str(e).splitlines()[0][:80]}); pick another --port") from None
