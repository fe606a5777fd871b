"""The web app of ``dl1 app``: upload or drop a photo, or pick a validation image, and see the predicted class,
the top probabilities as bars and the image as the model saw it.

Built with Gradio, the field's standard for such apps, which is an optional extra (``pip install
'dl1[app]'``); without it ``require_gradio`` says so in one line. The app listens on 127.0.0.1 unless
another address is given (``serve`` warns then), never opens a public tunnel (``share=False``, whatever
``GRADIO_SHARE`` says), and sends nothing anywhere: Gradio's analytics and version check are off
(``GRADIO_ANALYTICS_ENABLED=False`` is set in this process before Gradio is imported), as are its
monitoring page, server-side rendering, MCP server and API page. Uploads go through ``dl1.serve.answer``:
a file that is not a readable image gets a message in the page, and the app goes on serving.
"""

import ipaddress
import os

from dl1.io.errors import DL1Error
from dl1.io.log import warn
from dl1.serve.answer import answer

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 7860
MAX_UPLOAD = "50mb"
INSTALL_HINT = "dl1 app needs Gradio, the optional extra dl1[app]: pip install 'dl1[app]' (or pip install gradio)"


def require_gradio():
    """The ``gradio`` module, imported with its analytics off; a one-line ``DL1Error`` naming the extra when it
    is not installed."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read by Gradio at import and at every Blocks()
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    try:
        import gradio
    except ImportError:
        raise DL1Error(INSTALL_HINT) from None
    return gradio


def is_loopback(host):
    """True when ``host`` (an address or 'localhost') is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def enlarged(image, least=224):
    """``image`` (h, w, 3) scaled up by a whole factor with each pixel kept square (nearest neighbour), so
    that a 32-pixel input shows as the model saw it, pixels included, at a visible size."""
    if image is None:
        return None
    factor = max(1, -(-least // max(1, min(image.shape[:2]))))
    return image.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else image


def build_app(engine, examples=(), title="dl1"):
    """The Gradio ``Blocks`` of the app for ``engine`` (``dl1.serve.engines``); ``examples`` are image files
    shown as a gallery to pick from (e.g. a few validation images per class), as ``(path, caption)`` pairs or
    paths."""
    gr = require_gradio()
    examples = [(os.fspath(e), os.path.basename(e)) if isinstance(e, (str, os.PathLike)) else
                (os.fspath(e[0]), str(e[1])) for e in examples]
    n = len(engine.classes)
    height, width = engine.size

    def show(result):
        bars = None if result.problem else dict(result.probabilities)
        return result.markdown(), bars, enlarged(result.seen)

    def on_upload(path):
        if not path:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return *show(answer(engine, path)), None  # the drop zone is emptied for the next photo

    def on_pick(event: gr.SelectData):
        path, caption = examples[event.index]
        return show(answer(engine, path, name=caption))

    classes = ", ".join(engine.classes[:12]) + (f", ... ({n} in all)" if n > 12 else "")
    with gr.Blocks(title=title, analytics_enabled=False) as blocks:
        gr.Markdown(f"## {title}\nClasses: {classes}. The model takes {width}x{height} RGB images "
                    f"({engine.name}).", elem_id="dl1-header")
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Upload or drop a photo", type="filepath", elem_id="dl1-upload")
                gallery = gr.Gallery(value=examples or None, label="... or pick a validation image", columns=4,
                                     allow_preview=False, height=300, elem_id="dl1-examples",
                                     visible=bool(examples))
            with gr.Column():
                status = gr.Markdown("Upload a photo, or pick one of the validation images.",
                                     elem_id="dl1-answer")
                bars = gr.Label(num_top_classes=min(n, 5), label="Top probabilities", elem_id="dl1-bars")
                seen = gr.Image(label=f"The image as the model saw it ({width}x{height})", type="numpy",
                                interactive=False, height=240, format="png", elem_id="dl1-seen")
        upload.upload(on_upload, upload, [status, bars, seen, upload])
        gallery.select(on_pick, None, [status, bars, seen])
    return blocks


def serve(engine, examples=(), host=LOOPBACK, port=DEFAULT_PORT, title="dl1"):
    """Build the app and start serving it on ``host``:``port``; returns the running ``Blocks`` (its
    ``local_url``; ``block_thread()`` waits until Ctrl-C, ``close()`` stops it). A host other than the
    loopback gets a warning."""
    if not is_loopback(host):
        warn(f"serving on {host}: anyone who can reach this machine on port {port} can use the app and "
             "upload files to it (the default, 127.0.0.1, is this machine only)")
    blocks = build_app(engine, examples, title)
    folders = sorted({os.path.dirname(os.path.abspath(e if isinstance(e, (str, os.PathLike)) else e[0]))
                      for e in examples})
    try:
        blocks.launch(server_name=host, server_port=int(port), share=False, inbrowser=False,
                      prevent_thread_lock=True, quiet=True, show_error=False, max_file_size=MAX_UPLOAD,
                      allowed_paths=folders, enable_monitoring=False, ssr_mode=False, mcp_server=False,
                      pwa=False, footer_links=[])
    except OSError as e:  # Gradio says "Cannot find empty port in range: P-P. You can specify ..." for a taken port
        why = "it is in use" if "empty port" in str(e) else (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DL1Error(f"cannot serve on {host}:{port}: {why} (try another --port)") from None
    return blocks
