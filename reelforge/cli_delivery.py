"""The delivery commands of ``reelforge``: signed URLs, CDN configs, stream versions.

Contract: the Typer apps and command functions here are registered by
:mod:`reelforge.cli` (``image-url``, ``gc``, ``sign ...``, ``cdn ...``); like every
command they print JSON with ``--json`` and raise :class:`~reelforge.errors.InputError`
for bad input. Keys come from the environment and are never printed.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated

import typer

from reelforge.cli_options import JsonOpt
from reelforge.console import out_console
from reelforge.errors import InputError


def image_url(
    path: Annotated[str, typer.Argument(help="Source image path, relative to the served root.")],
    size: Annotated[str, typer.Option("--size", help="WIDTHxHEIGHT; 0 leaves one free.")],
    mode: Annotated[str, typer.Option("--mode", help="fit, fill or smart.")] = "fit",
    base_url: Annotated[str, typer.Option("--base-url", help="Origin to prefix.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """A signed on-the-fly image URL (key from REELFORGE_IMAGE_KEY; never printed)."""
    from reelforge import config
    from reelforge.delivery.image_service import MODES, SIZE, image_path

    if not SIZE.match(size):
        raise InputError(f"--size must look like 640x0 or 400x400, not {size!r}")
    if mode not in MODES:
        raise InputError(f"--mode must be one of {', '.join(MODES)}")
    key = config.load().image_key
    if key is None:
        raise InputError("REELFORGE_IMAGE_KEY is not set (the key that signs image URLs)")
    width, height = (int(x) for x in size.split("x"))
    url = base_url.rstrip("/") + image_path(width, height, mode, path, key)
    print(json.dumps({"url": url}) if as_json else url)


def gc(
    streams: Annotated[list[Path], typer.Argument(help="Stream folders (made with --versioned).")],
    grace: Annotated[
        float, typer.Option("--grace", help="Seconds a superseded version is kept.")
    ] = 86400.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove stream versions nothing has pointed to for longer than --grace."""
    from reelforge.delivery.versions import CURRENT, collect_garbage

    if grace < 0:
        raise InputError("--grace must be 0 or more seconds")
    for s in streams:
        if not (s / CURRENT).is_file():
            raise InputError(f"is not a versioned stream folder (no {CURRENT})", path=s)
    from reelforge.outputs import stream_folder

    removed = {}
    for s in streams:
        with stream_folder(s):  # the stream's lock: never while a version is being added
            removed[str(s)] = collect_garbage(s, grace, dry_run=dry_run)
    if as_json:
        print(json.dumps({"removed": removed, "dry_run": dry_run}, indent=2))
        return
    for stream, names in removed.items():
        verb = "would remove" if dry_run else "removed"
        out_console.print(f"{stream}: {verb} {len(names)} version(s) {' '.join(names)}".strip())


sign_app = typer.Typer(help="Signed URLs: ReelForge playback tokens and CloudFront.",
                       no_args_is_help=True)  # fmt: skip


@sign_app.command("playback")
def sign_playback(
    prefix: Annotated[
        str,
        typer.Argument(help="Stream folder under the served root, e.g. talk (. for the root)."),
    ],
    root: Annotated[
        Path | None,
        typer.Option("--root", help="The served folder (default: REELFORGE_SERVE_ROOT, else .)."),
    ] = None,
    expires_in: Annotated[int, typer.Option("--expires-in", help="Seconds it stays valid.")] = 3600,
    path: Annotated[str, typer.Option("--path", help="File to link to.")] = "master.m3u8",
    base_url: Annotated[str, typer.Option("--base-url", help="Origin to prefix.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """A playback URL for one stream (key from REELFORGE_PLAYBACK_KEY; never printed)."""
    import time

    from reelforge import config
    from reelforge.delivery.access import AccessDenied, AccessRule
    from reelforge.delivery.signing import make_token, valid_prefix

    cfg = config.load()
    key = cfg.playback_key
    if key is None:
        raise InputError("REELFORGE_PLAYBACK_KEY is not set (the key that signs playback URLs)")
    if expires_in <= 0:
        raise InputError("--expires-in must be positive")
    served = root if root is not None else cfg.serve_root or Path()
    if not isinstance(served, Path) or not served.is_dir():
        raise InputError("--root is not a local folder", path=served)
    prefix = prefix.strip("/")
    if not valid_prefix(prefix):
        raise InputError(
            f"not a stream folder: {prefix!r} (a folder under the root without . or .. "
            "parts; . for a root that is itself a stream)"
        )
    try:
        AccessRule(served, key).stream_scope(prefix)
    except AccessDenied:
        raise InputError(f"no stream folder {prefix!r} under the root", path=served) from None
    expires = int(time.time()) + expires_in
    url = f"{base_url.rstrip('/')}/p/{make_token(key, prefix, expires)}/{prefix}/{path}"
    print(json.dumps({"url": url, "expires": expires}) if as_json else url)


@sign_app.command("cloudfront")
def sign_cloudfront(
    url: Annotated[str, typer.Argument(help="The CloudFront URL to sign.")],
    key_pair_id: Annotated[str, typer.Option("--key-pair-id", help="The public key's ID.")],
    private_key: Annotated[Path, typer.Option("--private-key", help="RSA private key (PEM).")],
    expires_in: Annotated[int, typer.Option("--expires-in", help="Seconds it stays valid.")] = 3600,
    starts_in: Annotated[
        int | None, typer.Option("--starts-in", help="Seconds before it becomes valid.")
    ] = None,
    ip_range: Annotated[str | None, typer.Option("--ip", help="Viewer CIDR: 1.2.3.0/24.")] = None,
    resource: Annotated[
        str | None, typer.Option("--resource", help="Policy resource (wildcards), e.g. .../talk/*")
    ] = None,
    cookies: Annotated[bool, typer.Option("--cookies", help="Signed cookies instead.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """CloudFront signed URL or cookies (canned, or custom with --starts-in/--ip/--resource)."""
    import time

    from reelforge.delivery.cloudfront_signing import load_private_key, signed_cookies, signed_url

    if expires_in <= 0:
        raise InputError("--expires-in must be positive")
    key = load_private_key(private_key)
    now = time.time()
    expires, starts = now + expires_in, (now + starts_in if starts_in is not None else None)
    if cookies:
        jar = signed_cookies(resource or url, key_pair_id, key, expires, starts=starts,
                             ip_range=ip_range)  # fmt: skip
        if as_json:
            print(json.dumps({"cookies": jar, "expires": int(expires)}, indent=2))
        else:
            for name, value in jar.items():
                print(f"{name}={value}")
        return
    signed = signed_url(url, key_pair_id, key, expires, starts=starts, ip_range=ip_range,
                        resource=resource)  # fmt: skip
    print(json.dumps({"url": signed, "expires": int(expires)}) if as_json else signed)


cdn_app = typer.Typer(help="Edge cache configurations: nginx, CloudFront.", no_args_is_help=True)


@cdn_app.command("nginx")
def cdn_nginx(
    output: Annotated[Path, typer.Option("-o", "--output", help="nginx.conf to write.")],
    origin: Annotated[str, typer.Option("--origin", help="host:port of reelforge serve (or web).")],
    serve: Annotated[
        Path | None,
        typer.Option("--serve", help="Be the origin: serve this published root with nginx."),
    ] = None,
    listen: Annotated[str, typer.Option("--listen", help="Address nginx listens on.")] = (
        "127.0.0.1:8080"
    ),
    prefix: Annotated[
        Path | None, typer.Option("--prefix", help="Folder for cache, logs, temp files.")
    ] = None,
    manifest_ttl: Annotated[
        int | None,
        typer.Option(
            "--manifest-ttl",
            help="Manifest TTL (s): the edge's fallback (60); with --serve, the manifests' "
            "max-age (default REELFORGE_MANIFEST_MAX_AGE, as reelforge serve).",
        ),
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="Account nginx workers run as.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """An nginx edge cache config (cache lock, stale-while-revalidate, slices) for the origin,
    or with --serve an nginx origin that sends the root's files itself and asks the app
    only for tokens, pages, images and the API."""
    from reelforge.fsutil import write_text_atomic

    if manifest_ttl is not None and manifest_ttl < 0:
        raise InputError("--manifest-ttl must be 0 or more")
    if not re.fullmatch(r"\[?[\w.:-]+\]?:\d{1,5}|\d{1,5}", listen):
        raise InputError(f"--listen must be HOST:PORT or PORT, not {listen!r}", option="--listen")
    if not re.fullmatch(r"(http://)?\[?[\w.:-]+\]?:\d{1,5}/?", origin):
        raise InputError(f"--origin must be HOST:PORT, not {origin!r}", option="--origin")
    prefix = (prefix or output.parent / ("origin" if serve is not None else "edge")).absolute()
    if serve is not None:
        from reelforge import config
        from reelforge.delivery.nginx_origin import nginx_origin_config

        if not serve.is_dir():
            raise InputError("is not a folder", path=serve)
        try:
            text = nginx_origin_config(
                root=os.path.realpath(serve), origin=origin, listen=listen, prefix=str(prefix),
                manifest_max_age=manifest_ttl if manifest_ttl is not None
                else config.load().manifest_max_age, user=user)  # fmt: skip
        except ValueError as exc:
            raise InputError(str(exc), path=serve) from None
        subs = ("tmp", "tokens", "empty")
    else:
        from reelforge.delivery.cdn import nginx_config

        text = nginx_config(origin=origin, listen=listen, prefix=str(prefix),
                            manifest_ttl=60 if manifest_ttl is None else manifest_ttl,
                            user=user)  # fmt: skip
        subs = ("cache", "tmp")
    for sub in subs:
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    write_text_atomic(output, text)
    if as_json:
        print(json.dumps({"config": str(output.absolute()), "prefix": str(prefix)}))
    else:
        out_console.print(f"Wrote {output}; run: nginx -p {prefix} -c {output.absolute()}")


@cdn_app.command("cloudfront")
def cdn_cloudfront(
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the JSON files.")],
    origin_domain: Annotated[str, typer.Option("--origin-domain", help="The origin's host.")],
    shield_region: Annotated[
        str, typer.Option("--shield-region", help="Origin Shield region.")
    ] = "us-east-1",
    manifest_ttl: Annotated[
        int, typer.Option("--manifest-ttl", help="Default manifest TTL (s).")
    ] = 60,
    as_json: JsonOpt = False,
) -> None:
    """CloudFront cache policies and distribution config, checked against botocore's model."""
    from reelforge.delivery.cdn import cloudfront_config, validate_cloudfront
    from reelforge.errors import ReelforgeError
    from reelforge.fsutil import write_text_atomic

    config = cloudfront_config(origin_domain=origin_domain, shield_region=shield_region,
                               manifest_ttl=manifest_ttl)  # fmt: skip
    problems = validate_cloudfront(config)
    if problems:
        raise ReelforgeError("CloudFront config is invalid: " + "; ".join(problems))
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, policy in config["cache_policies"].items():
        path = output / f"cache-policy-{name}.json"
        write_text_atomic(path, json.dumps(policy, indent=2))
        written.append(str(path))
    path = output / "distribution-config.json"
    write_text_atomic(path, json.dumps(config["distribution"], indent=2))
    written.append(str(path))
    if as_json:
        print(json.dumps({"files": written, "valid": True}, indent=2))
        return
    for w in written:
        out_console.print(f"Wrote {w}")
    out_console.print("Create the cache policies (aws cloudfront create-cache-policy "
                      "--cache-policy-config file://...), then put their IDs in place of "
                      "{{cache-policy:NAME}} and create the distribution.")  # fmt: skip
