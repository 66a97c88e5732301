"""A production origin on nginx: the published root served by nginx, Python only where needed.

Contract: :func:`nginx_origin_config` returns a complete ``nginx.conf`` (runnable as is with
``nginx -p PREFIX -c FILE``; its paths live under ``prefix``) that serves the folder
``root`` on ``listen`` with the answers ``reelforge serve`` gives, and sends to the app at
``origin`` (``reelforge serve`` or ``reelforge web``) only what needs Python:

- **Fast path** (nginx sends the file: ``sendfile``, single byte ranges, ETag and
  Last-Modified validators, ``If-Modified-Since`` as the app reads it): ``GET``/``HEAD``
  of ``/media/<path>`` and ``/p/<token>/<path>`` where every part of ``<path>`` (at most
  :data:`MAX_DEPTH` folders deep) is a plain name (no ``.``-name, no empty part), no part
  is a symlink (``disable_symlinks on``, checked from the root down), the file is a
  regular file and the Range header, if any, is one plain ``bytes=A-B``. Unsigned paths
  also need no ``.private`` marker in the root or any folder above the file (checked on
  every request, never cached). Signed paths need the token's scope from the app's token
  endpoint (``auth_request`` to ``/_reelforge/token/<token>``, cached per token until
  the second before it expires, refusals for :data:`DENIED_TTL` seconds) and must lie
  inside it. Content types come from the app's own MIME table, Cache-Control from the
  same asset classes as :func:`reelforge.delivery.cache.cache_control` (``private`` for
  signed paths), CORS as the app's middleware sends it.
- **Compression**: playlists, MPDs, WebVTT, JSON and JavaScript are gzip-compressed by
  nginx, with ``Vary: Accept-Encoding``; a client that accepts ``br`` (or ``*``) and any
  ranged request for such a file is answered by the app (Brotli needs Python here).
- **Everything else goes to the app**, which makes the one access decision
  (:class:`reelforge.delivery.access.AccessRule`): anything the fast path does not take
  or cannot answer with a success (a dot name, a symlink, a private folder, a missing
  file, a folder, a Range header other than one ordered byte range, a refused token, other methods,
  ``OPTIONS`` preflights) is passed on unchanged, with the client's raw request path,
  so every denial is the app's own answer. The player pages, ``/player/``, ``/img/``,
  the API and uploads are proxied as they are.

Nothing here is decided by nginx that the app would refuse: nginx serves a subset of what
the app grants, by construction; the header-conformance tests run against both.
"""

from __future__ import annotations

import mimetypes
import re

from reelforge.delivery.cache import IMMUTABLE, MANIFEST_SUFFIXES, register_mime_types
from reelforge.delivery.compress import COMPRESSIBLE
from reelforge.layout import HASHED

MAX_DEPTH = 8  # folders below the root the fast path checks for private markers
DENIED_TTL = 10  # seconds nginx keeps the app's refusal of a token
GRANT_TTL_CAP = 300  # a valid token's scope is asked again at least this often
TOKEN_ENDPOINT = "/_reelforge/token/"
SCOPE_HEADER = "X-Reelforge-Scope"
_SAFE_TYPE = re.compile(r"^[A-Za-z0-9][\w.+-]*/[\w.+-]+$")
_SAFE_EXT = re.compile(r"^[A-Za-z0-9][\w+-]*$")


def _types_block() -> tuple[str, list[str]]:
    """nginx's ``types`` from the MIME table the app uses, and the types it sends with a
    charset (Starlette adds ``charset=utf-8`` to every ``text/*`` type)."""
    register_mime_types()
    chosen: dict[
        str, str
    ] = {}  # nginx matches extensions without case, as guess_type falls back to
    for ext, mime in sorted(mimetypes.types_map.items(), key=lambda em: em[0] != em[0].lower()):
        ext = ext.lstrip(".").lower()
        if _SAFE_TYPE.match(mime) and _SAFE_EXT.match(ext):
            chosen.setdefault(ext, mime)
    by_type: dict[str, list[str]] = {}
    for ext, mime in sorted(chosen.items()):
        by_type.setdefault(mime, []).append(ext)
    lines = [f"        {mime} {' '.join(exts)};" for mime, exts in sorted(by_type.items())]
    # nginx always sends text/html with the charset: it is not listed in charset_types
    text = sorted(m for m in by_type if m.startswith("text/") and m != "text/html")
    return "\n".join(lines), text


def _cache_map(name: str, manifest_max_age: int, visibility: str) -> str:
    """A ``map`` from ``$uri`` to the Cache-Control value of its asset class."""
    hashed = HASHED.pattern
    suffixes = "|".join(s.lstrip(".") for s in MANIFEST_SUFFIXES)
    manifest = (f"{visibility}, max-age={manifest_max_age}, "
                f"stale-while-revalidate={manifest_max_age * 5}")  # fmt: skip
    return (
        f"    map $uri ${name} {{\n"
        f'        "~{hashed}" "{IMMUTABLE.replace("public", visibility)}";\n'
        f'        "~\\.({suffixes})$" "{manifest}";\n'
        f'        default "{visibility}, max-age=300";\n'
        f"    }}\n"
    )


NO_MARKER = "/.reelforge-no-marker"  # checked for folders a path does not have


def _depth_maps(root: str) -> str:
    """``$rf_m1`` .. ``$rf_mN``: the marker path of the first k folders of ``$rf_rel``
    (``ROOT/<k folders>/.private``), or :data:`NO_MARKER` when it has fewer: a one-part
    path that fails fast, where the root's marker again cost a walk of the root's parts
    under ``disable_symlinks`` (a file there would only send every request to the app)."""
    out = []
    for k in range(1, MAX_DEPTH + 1):
        folders = "/".join(["[^/]+"] * k)
        out.append(f'    map $rf_rel $rf_m{k} {{ "~^({folders})/" "{root}/$1/.private"; '
                   f'default "{NO_MARKER}"; }}')  # fmt: skip
    return "\n".join(out) + "\n"


def _range_patterns() -> list[str]:
    """The Range values nginx may answer itself (``map`` regexes): no number over 18
    digits and none with a leading zero, so a longer number is a greater one; no
    recursion or lookbehind, so PCRE and Python's ``re`` read them alike."""
    n = "(?:0|[1-9][0-9]{0,17})"
    longer = "|".join(f"(?:0|[1-9][0-9]{{{i - 1}}})-[1-9][0-9]{{{i},17}}" if i > 1
                      else "[0-9]-[1-9][0-9]{1,17}" for i in range(1, 18))  # fmt: skip
    same = "|".join(f"[0-9]{{{i}}}-[0-9]{{{i}}}" for i in range(1, 19))
    greater = "|".join(f"{d}[0-9]*-\\1[{d + 1}-9]" for d in range(9))
    return [
        f"^bytes={n}-$",  # from A to the end
        "^bytes=-[1-9][0-9]{0,17}$",  # the last N bytes
        f"^bytes=({n})-\\1$",  # one byte
        f"^bytes=(?:{longer})$",  # B has more digits than A
        # as many digits, and at the first digit that differs, B's is greater
        f"^bytes=(?={n}-{n}$)(?=(?:{same})$)([0-9]*)(?:{greater})[0-9]*$",
    ]


def _private_checks(root: str) -> str:
    checks = [f"            if (-e {root}/.private) {{ return 418; }}"]
    checks += [f"            if (-e $rf_m{k}) {{ return 418; }}" for k in range(1, MAX_DEPTH + 1)]
    return "\n".join(checks)


TEMPLATE = """\
# nginx origin for a ReelForge root (written by `reelforge cdn nginx --serve`): nginx sends
# the files; the app at @@ORIGIN@@ decides everything else. See reelforge/delivery/nginx_origin.py.
@@USER@@worker_processes auto;
pid @@PREFIX@@/nginx.pid;
error_log @@PREFIX@@/error.log warn;

events {
    worker_connections 4096;
}

http {
    client_body_temp_path @@PREFIX@@/tmp/body;
    proxy_temp_path @@PREFIX@@/tmp/proxy;
    fastcgi_temp_path @@PREFIX@@/tmp/fastcgi;
    uwsgi_temp_path @@PREFIX@@/tmp/uwsgi;
    scgi_temp_path @@PREFIX@@/tmp/scgi;

    log_format origin '$remote_addr [$time_local] "$request" $status $body_bytes_sent '
                      'app=$upstream_response_time time=$request_time';
    access_log @@PREFIX@@/access.log origin buffer=64k flush=1s;

    server_tokens off;
    sendfile on;
    sendfile_max_chunk 2m;
    tcp_nopush off;                  # on, 64 KB ranges waited ~40 ms each for the ACK
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 10000;
    large_client_header_buffers 4 16k;
    merge_slashes off;               # "//" goes to the app, which refuses it
    if_modified_since before;        # as Starlette: not modified since a later date too
    max_ranges 1;
    client_max_body_size 0;          # uploads: the app sets its own limits

    types_hash_max_size 4096;
    types_hash_bucket_size 128;
    types {
@@TYPES@@
    }
    default_type text/plain;
    charset utf-8;
    charset_types @@TEXT_TYPES@@;

    gzip off;
    gzip_comp_level 6;
    gzip_min_length 20;
    gzip_types @@GZIP_TYPES@@;
    gzip_vary off;                   # Vary is added below for every compressible file

    upstream reelforge_app {
        server @@ORIGIN@@;
        keepalive 64;
    }

    # a token's scope, as the app's token endpoint answered it, per token
    proxy_cache_path @@PREFIX@@/tokens levels=1:2 keys_zone=reelforge_tokens:16m
                     max_size=256m inactive=10m use_temp_path=off;

@@PUBLIC_CACHE@@
@@PRIVATE_CACHE@@
    map $uri $rf_compressible {
        "~\\.(@@COMPRESSIBLE@@)$" 1;
        default 0;
    }
    map $rf_compressible $rf_vary { 1 "Accept-Encoding"; default ""; }
    map $http_origin $rf_cors { "" ""; default "*"; }
    map $http_origin $rf_cors_expose { "" ""; default "Content-Length, Content-Range, ETag"; }
    map $request_method $rf_odd_method { GET 0; HEAD 0; default 1; }
    # 0 for no Range and for one byte range nginx answers as the app does (RFC 9110, see
    # reelforge/delivery/cache.py): "A-", "-N" (N > 0), "A-B" with A <= B (compared by length,
    # then digit by digit); any other value goes to the app, which ignores or refuses it
    map $http_range $rf_odd_range {
        "" 0;
@@RANGE_OK@@
        default 1;
    }
    map $http_range $rf_ranged { "" 0; default 1; }
    map $http_accept_encoding $rf_br { "~*br|\\*" 1; default 0; }
    # 1 when the app must answer: another method, an unusual range, or a compressible file
    # asked for in Brotli or by range (the app serves ranges of those uncompressed)
    map "$rf_odd_method$rf_odd_range$rf_compressible$rf_ranged$rf_br" $rf_to_app {
        "~^1" 1;
        "~^.1" 1;
        "~^..1(1.|.1)$" 1;
        default 0;
    }
@@DEPTH_MAPS@@
    # the file a signed request may have: inside the token's scope ("/" + scope + "/",
    # "/" for the root), else a path that does not exist, so the app answers
    map "$rf_scope|/$rf_rel" $rf_signed_file {
        "~^(/[^|]*)\\|(\\1.*)$" "@@ROOT@@$2";
        default "@@PREFIX@@/empty/out-of-scope";
    }

    server {
        listen @@LISTEN@@;
        server_name _;
        disable_symlinks on from=@@ROOT@@;

        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_request_buffering off;     # uploads stream through

        # Unsigned media: public files only; anything else is the app's to answer.
        location ~ "^/media/(?<rf_rel>@@REL_RE@@)$" {
            error_page 403 404 418 500 = @app;
            if ($rf_to_app) { return 418; }
@@PRIVATE_CHECKS@@
            if (-d @@ROOT@@/$rf_rel) { return 418; }
            alias @@ROOT@@/$rf_rel;
            gzip on;
            add_header Cache-Control $rf_public_cache;
            add_header Vary $rf_vary;
            # not 'always': a 416 is made after these headers were added once (status 200
            # then), and 'always' would add them a second time
            add_header Access-Control-Allow-Origin $rf_cors;
            add_header Access-Control-Expose-Headers $rf_cors_expose;
        }

        # Signed media: the token's scope from the app (cached), the path inside it.
        location ~ "^/p/(?<rf_token>@@TOKEN_RE@@)/(?<rf_rel>(?!watch/)@@REL_RE@@)$" {
            error_page 401 403 404 418 500 = @app;
            if ($rf_to_app) { return 418; }
            if (-d @@ROOT@@/$rf_rel) { return 418; }
            auth_request /_reelforge_auth;
            auth_request_set $rf_scope $upstream_http_@@SCOPE_VAR@@;
            alias $rf_signed_file;
            gzip on;
            add_header Cache-Control $rf_private_cache;
            add_header Vary $rf_vary;
            # not 'always': a 416 is made after these headers were added once (status 200
            # then), and 'always' would add them a second time
            add_header Access-Control-Allow-Origin $rf_cors;
            add_header Access-Control-Expose-Headers $rf_cors_expose;
        }

        location = /_reelforge_auth {
            internal;
            proxy_pass http://reelforge_app@@TOKEN_ENDPOINT@@$rf_token;
            proxy_pass_request_body off;
            proxy_pass_request_headers off;
            proxy_set_header Content-Length "";
            proxy_set_header Host $host;
            proxy_method GET;
            proxy_cache reelforge_tokens;
            proxy_cache_key $rf_token;
            proxy_cache_valid 200 403 @@DENIED_TTL@@s;  # the app's X-Accel-Expires rules
            proxy_cache_lock on;
            proxy_cache_lock_timeout 5s;
            proxy_ignore_headers Set-Cookie Vary;
        }

        location ^~ @@TOKEN_ENDPOINT@@ {
            return 404;                  # the token endpoint is nginx's own
        }

        location @app {
            proxy_pass http://reelforge_app;
        }

        location / {
            proxy_pass http://reelforge_app;
        }
    }
}
"""


def nginx_origin_config(*, root: str, origin: str, listen: str, prefix: str,
                        manifest_max_age: int = 60, user: str | None = None) -> str:  # fmt: skip
    """See the module docstring. ``root`` is the served folder (made absolute and resolved
    by the caller), ``origin`` ``host:port`` of the app, ``user`` the account nginx
    workers run as (they must read ``root`` and write ``prefix``)."""
    for name, value in (("root", root), ("prefix", prefix)):
        if not value.startswith("/") or re.search(r'[\s;{}"\'$\\]', value):
            raise ValueError(f"{name} must be an absolute path without spaces, quotes, "
                             f"braces, ';', '$' or '\\': {value!r}")  # fmt: skip
    types, text_types = _types_block()
    compressible = "|".join(s.lstrip(".") for s in COMPRESSIBLE)
    gzip_types = sorted({mimetypes.guess_type(f"x{s}")[0] for s in COMPRESSIBLE} - {None})
    values = {
        "USER": f"user {user};\n" if user else "",
        "PREFIX": prefix.rstrip("/"),
        "ROOT": root.rstrip("/") or "/",
        "ORIGIN": origin.removeprefix("http://").rstrip("/"),
        "LISTEN": listen,
        "TYPES": types,
        "TEXT_TYPES": " ".join(text_types),
        "GZIP_TYPES": " ".join(gzip_types),
        "PUBLIC_CACHE": _cache_map("rf_public_cache", manifest_max_age, "public"),
        "PRIVATE_CACHE": _cache_map("rf_private_cache", manifest_max_age, "private"),
        "COMPRESSIBLE": compressible,
        "DEPTH_MAPS": _depth_maps(root.rstrip("/")),
        "RANGE_OK": "\n".join(f'        "~*{p}" 0;' for p in _range_patterns()),
        "PRIVATE_CHECKS": _private_checks(root.rstrip("/")),
        # a relative path of plain names (none starting with "."), MAX_DEPTH folders at most
        "REL_RE": f"(?:[^./][^/]*/){{0,{MAX_DEPTH}}}[^./][^/]*",
        "TOKEN_RE": r"[A-Za-z0-9_-]{1,400}\.[A-Za-z0-9_-]{43}",
        "SCOPE_VAR": SCOPE_HEADER.lower().replace("-", "_"),
        "TOKEN_ENDPOINT": TOKEN_ENDPOINT,
        "DENIED_TTL": str(DENIED_TTL),
    }
    return re.sub(r"@@([A-Z_]+)@@", lambda m: values[m[1]], TEMPLATE)
