"""``nn-gpu serve``: a local web page to write a number on and watch a
saved model read it, live, and the JSON API behind it (docs/serve.md).

    nn-gpu serve model.npz                 # then open http://127.0.0.1:8000/
    nn-gpu serve model.npz --port 0        # any free port (the URL says which)

The model (and the whole-digit check) is loaded once, at start: changing or
removing the model file while the server runs changes nothing until it is
started again.
"""

import argparse
import signal
import sys

from ..analysis.ensemble import load_model
from ..errors import InvalidArgumentError
from ..reading.images import PILLOW_HINT, check_model, require_pillow
from ..serve import Reader, make_server
from ..reading.whole_digit import default_check
from .common import CliError, add_backend, add_data, add_model, interrupt


def port(text):
    """A TCP port 0-65535 (0: any free one)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port 0-65535 (0: any free one), "
                                         f"got {text!r}")
    return value


def note(message):
    """A line on stderr (stdout is the URL line)."""
    print(f"nn-gpu serve: {message}", file=sys.stderr, flush=True)


def cmd_serve(args):
    """Load the model and the check, listen, say where, serve until Ctrl-C."""
    require_pillow()
    net = load_model(args.model, backend=args.backend)
    try:
        check_model(net)  # before the whole-digit check, which may take a while
    except InvalidArgumentError as exc:
        raise CliError(f"{args.model}: {exc}") from None
    check = None if args.no_check else default_check(args.data, say=note)
    reader = Reader(net, check, args.model)
    server = make_server(args.host, args.port, reader, say=note)
    previous = signal.signal(signal.SIGTERM, interrupt)  # a service manager's stop: as Ctrl-C
    try:
        print(f"Reading with {args.model} at {server.url} (Ctrl-C to stop)", flush=True)
        if not server.loopback:
            note(f"listening on {args.host}: anyone who can reach this machine can use the "
                 "page (use --host 127.0.0.1 to keep it to yourself)")
        server.serve_forever()
    except KeyboardInterrupt:
        note("stopped")
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
    return 0


def add_parser(commands):
    """Register ``serve`` on the subparsers object of ``nn-gpu``'s parser."""
    serve = commands.add_parser(
        "serve", help="a local web page: write a number, watch the model read it",
        description="Serve a web page on which you write a number (mouse, pen or finger) "
                    "and watch a model from `train --save` read it as you write, as `read` "
                    "does: the digits, each digit's probability, the cuts, and each digit "
                    "as the network sees it; a second tab shows a single digit's ten "
                    "outputs. Scripts can POST images to the same server and get what "
                    "`read --json` prints (docs/serve.md). Needs Pillow: " + PILLOW_HINT,
        epilog="The model is loaded once, at start. The page and everything it needs come "
               "from the package: it works offline.")
    add_model(serve)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1, this machine only; "
                            "0.0.0.0 opens it to the network)")
    serve.add_argument("--port", type=port, default=8000,
                       help="TCP port (default: 8000; 0: any free one)")
    serve.add_argument("--no-check", action="store_true",
                       help="cut by the model's confidence alone, without the whole-digit "
                            "check (see `read --help`)")
    add_data(serve)
    add_backend(serve)
    serve.set_defaults(func=cmd_serve, parser=serve)
    return serve
