"""Edge cache configurations for the origin: nginx, and CloudFront.

Contract: :func:`nginx_config` returns a complete ``nginx.conf`` for an edge cache in front
of the origin (runnable as is with ``nginx -p PREFIX -c FILE``; its paths live under
``prefix``):

- one cache zone; ``proxy_cache_lock`` so a burst of viewers asking for the same missing
  object costs the origin one request; ``proxy_cache_use_stale`` with
  ``proxy_cache_background_update`` so expired manifests are refreshed without making a
  viewer wait; revalidation with the origin's validators;
- manifests (``.m3u8``, ``.mpd``, ``.vtt``) cached as long as the origin's
  ``Cache-Control`` says (short, with ``stale-while-revalidate``), variants per
  ``Accept-Encoding`` (the origin sends ``Vary``);
- segments and init segments cached for a year (their names carry content hashes);
  large files (the fast-start MP4 fallback) fetched and cached in 1 MB slices so a range
  request never pulls the whole file;
- ``/img/`` keyed on the format the viewer accepts (AVIF, WebP or other), not on the raw
  ``Accept`` header, so browsers share cache entries;
- ``X-Cache-Status`` on every answer and an access log with the cache status.

:func:`cloudfront_config` returns cache policies (manifests, segments, images) and a
distribution config with one cache behaviour per asset class and Origin Shield, as the
CloudFront API takes them (``CreateCachePolicy``'s ``CachePolicyConfig``,
``CreateDistribution``'s ``DistributionConfig``); cache policy IDs appear as
``{{cache-policy:NAME}}`` until the policies exist. :func:`validate_cloudfront` checks
every document against botocore's own CloudFront service model (offline) and returns the
problems found.
"""

from __future__ import annotations

import uuid

NGINX_TEMPLATE = """\
# nginx edge cache for a ReelForge origin (written by `reelforge cdn nginx`).
{user}worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;

    log_format edge '$remote_addr [$time_local] "$request" $status $body_bytes_sent '
                    'cache=$upstream_cache_status upstream=$upstream_response_time '
                    'time=$request_time';
    access_log {prefix}/access.log edge;

    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    large_client_header_buffers 4 16k;

    proxy_cache_path {cache_dir} levels=1:2 keys_zone=reelforge:64m max_size={max_size}
                     inactive=30d use_temp_path=off;

    upstream reelforge_origin {{
        server {origin_host};
        keepalive 64;
    }}

    # The format an image request will get, from Accept: the cache key uses this, not the
    # raw header, so every browser that takes AVIF shares one entry.
    map $http_accept $reelforge_image_format {{
        default                 other;
        "~*image/avif"          avif;
        "~*image/webp"          webp;
    }}

    server {{
        listen {listen};
        server_name _;

        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_cache reelforge;
        proxy_cache_lock on;                 # one origin fetch per missing object
        proxy_cache_lock_timeout 30s;
        proxy_cache_lock_age 30s;
        proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;
        proxy_cache_background_update on;    # refresh expired entries behind the viewer
        proxy_cache_revalidate on;           # If-None-Match / If-Modified-Since upstream
        proxy_cache_min_uses 1;
        add_header X-Cache-Status $upstream_cache_status always;

        # Manifests: as long as the origin's Cache-Control says ({manifest_ttl} s by
        # default), stale-while-revalidate honoured.
        location ~* \\.(m3u8|mpd|vtt)$ {{
            proxy_cache_key $scheme$proxy_host$request_uri;
            proxy_cache_valid 200 {manifest_ttl}s;
            proxy_cache_valid 404 2s;
            proxy_pass http://reelforge_origin;
        }}

        # Segments and init segments: immutable (content-hashed names).
        location ~* \\.(m4s|m4a|m4v|ts)$ {{
            proxy_cache_key $scheme$proxy_host$uri;
            proxy_cache_valid 200 206 365d;
            proxy_cache_valid 404 2s;
            proxy_ignore_headers Set-Cookie;
            proxy_pass http://reelforge_origin;
        }}

        # Whole MP4 files (the fast-start fallback): cached in 1 MB slices, so range
        # requests (seeking) fetch only the slices they touch.
        location ~* \\.mp4$ {{
            slice 1m;
            proxy_cache_key $scheme$proxy_host$uri$slice_range;
            proxy_set_header Range $slice_range;
            proxy_cache_valid 200 206 365d;
            proxy_pass http://reelforge_origin;
        }}

        location /img/ {{
            proxy_cache_key $scheme$proxy_host$uri$reelforge_image_format;
            proxy_cache_valid 200 365d;
            proxy_cache_valid 403 404 410 10s;
            proxy_pass http://reelforge_origin;
        }}

        location / {{
            proxy_cache_key $scheme$proxy_host$request_uri;
            proxy_pass http://reelforge_origin;
        }}
    }}
}}
"""


def nginx_config(*, origin: str, listen: str, prefix: str, cache_dir: str | None = None,
                 manifest_ttl: int = 60, max_size: str = "10g",
                 user: str | None = None) -> str:  # fmt: skip
    """See the module docstring. ``origin`` is ``host:port`` of ``reelforge serve``;
    ``user`` the account nginx workers run as (they must write the cache folder)."""
    origin_host = origin.removeprefix("http://").rstrip("/")
    return NGINX_TEMPLATE.format(user=f"user {user};\n" if user else "",
                                 prefix=prefix.rstrip("/"), origin_host=origin_host,
                                 listen=listen, cache_dir=cache_dir or f"{prefix}/cache",
                                 manifest_ttl=manifest_ttl, max_size=max_size)  # fmt: skip


def _items(values: list) -> dict:
    return {"Quantity": len(values), "Items": values} if values else {"Quantity": 0}


def _cache_policy(name: str, comment: str, min_ttl: int, default_ttl: int, max_ttl: int,
                  headers: list[str] | None = None) -> dict:  # fmt: skip
    header_config = {"HeaderBehavior": "none"}
    if headers:
        header_config = {"HeaderBehavior": "whitelist", "Headers": _items(headers)}
    return {
        "Name": name,
        "Comment": comment,
        "MinTTL": min_ttl,
        "DefaultTTL": default_ttl,
        "MaxTTL": max_ttl,
        "ParametersInCacheKeyAndForwardedToOrigin": {
            "EnableAcceptEncodingGzip": True,
            "EnableAcceptEncodingBrotli": True,
            "HeadersConfig": header_config,
            "CookiesConfig": {"CookieBehavior": "none"},
            "QueryStringsConfig": {"QueryStringBehavior": "none"},
        },
    }


def _behaviour(pattern: str | None, policy: str, compress: bool) -> dict:
    out = {
        "TargetOriginId": "reelforge-origin",
        "ViewerProtocolPolicy": "redirect-to-https",
        "AllowedMethods": {
            "Quantity": 3,
            "Items": ["GET", "HEAD", "OPTIONS"],
            "CachedMethods": {"Quantity": 2, "Items": ["GET", "HEAD"]},
        },
        "Compress": compress,
        "CachePolicyId": f"{{{{cache-policy:{policy}}}}}",
    }
    if pattern is not None:
        out = {"PathPattern": pattern, **out}
    return out


def cloudfront_config(*, origin_domain: str, shield_region: str = "us-east-1",
                      manifest_ttl: int = 60, comment: str = "ReelForge streams",
                      price_class: str = "PriceClass_All") -> dict:  # fmt: skip
    """See the module docstring."""
    policies = {
        "reelforge-manifests": _cache_policy(
            "reelforge-manifests", "HLS/DASH manifests and WebVTT: short, origin decides",
            0, manifest_ttl, 3600),
        "reelforge-segments": _cache_policy(
            "reelforge-segments", "CMAF segments, init segments, MP4: content-hashed, a year",
            86400, 31536000, 31536000),
        "reelforge-images": _cache_policy(
            "reelforge-images", "On-the-fly images: the format follows Accept",
            86400, 31536000, 31536000, headers=["Accept"]),
    }  # fmt: skip
    behaviours = [
        _behaviour("*.m3u8", "reelforge-manifests", True),
        _behaviour("*.mpd", "reelforge-manifests", True),
        _behaviour("*.vtt", "reelforge-manifests", True),
        _behaviour("*.m4s", "reelforge-segments", False),
        _behaviour("*.mp4", "reelforge-segments", False),
        _behaviour("/img/*", "reelforge-images", False),
    ]
    origin = {
        "Id": "reelforge-origin",
        "DomainName": origin_domain,
        "CustomOriginConfig": {
            "HTTPPort": 80,
            "HTTPSPort": 443,
            "OriginProtocolPolicy": "https-only",
            "OriginSslProtocols": {"Quantity": 1, "Items": ["TLSv1.2"]},
            "OriginReadTimeout": 30,
            "OriginKeepaliveTimeout": 5,
        },
        # One regional cache in front of the origin: edges miss into it, not the origin.
        "OriginShield": {"Enabled": True, "OriginShieldRegion": shield_region},
    }
    distribution = {
        "CallerReference": f"reelforge-{uuid.uuid4().hex[:12]}",
        "Comment": comment,
        "Enabled": True,
        "PriceClass": price_class,
        "HttpVersion": "http2and3",
        "IsIPV6Enabled": True,
        "Origins": _items([origin]),
        "DefaultCacheBehavior": _behaviour(None, "reelforge-segments", False),
        "CacheBehaviors": _items(behaviours),
    }
    return {"cache_policies": policies, "distribution": distribution}


def validate_cloudfront(config: dict) -> list[str]:
    """Problems botocore's CloudFront model finds in ``config`` (empty when valid)."""
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("cloudfront")
    validator = ParamValidator()
    problems = []
    checks = [("CreateCachePolicy", {"CachePolicyConfig": p}, name)
              for name, p in config["cache_policies"].items()]  # fmt: skip
    checks.append(("CreateDistribution", {"DistributionConfig": config["distribution"]},
                   "distribution"))  # fmt: skip
    for operation, params, name in checks:
        report = validator.validate(params, model.operation_model(operation).input_shape)
        if report.has_errors():
            problems.append(f"{name}: {report.generate_report()}")
    return problems
