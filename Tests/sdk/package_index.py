"""A package registry stand-in on loopback, for environment packages: a PEP 503 simple index
with one wheel (`drover-demo`), a flat apt repository with one package (`drover-hello`, built
here with dpkg-deb) and an npm registry with one package (`drover-left-pad`). Every request is
counted by path; GET /_counts answers the counts. Prints `listening HOST:PORT` when ready.

usage: package_index.py HOST"""
import base64
import gzip
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import zipfile

HOST = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.2"
counts = {}
lock = threading.Lock()


def wheel():
    """drover_demo 1.0, pure Python, as pip expects a wheel: the module, METADATA, WHEEL and RECORD."""
    files = {
        "drover_demo/__init__.py": b'GREETING = "hello from a wheel"\n',
        "drover_demo-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: drover-demo\nVersion: 1.0\n",
        "drover_demo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: drover-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{name},sha256={digest},{len(data)}\n"
    record += "drover_demo-1.0.dist-info/RECORD,,\n"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("drover_demo-1.0.dist-info/RECORD", record)
    return out.getvalue()


def deb():
    """drover-hello 1.0 (Architecture: all): /usr/bin/drover-hello prints a line."""
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(f"{root}/pkg/DEBIAN")
        os.makedirs(f"{root}/pkg/usr/bin")
        with open(f"{root}/pkg/DEBIAN/control", "w") as f:
            f.write("Package: drover-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: Drover <test@drover.invalid>\n"
                    "Description: says hello from a deb\n")
        with open(f"{root}/pkg/usr/bin/drover-hello", "w") as f:
            f.write("#!/bin/sh\necho hello from a deb\n")
        os.chmod(f"{root}/pkg/usr/bin/drover-hello", 0o755)
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", f"{root}/pkg", f"{root}/out.deb"],
                       check=True, stdout=subprocess.DEVNULL)
        with open(f"{root}/out.deb", "rb") as f:
            return f.read()


def npm_tarball():
    """drover-left-pad 1.0.0: package/package.json and package/index.js."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in {
            "package/package.json": json.dumps({"name": "drover-left-pad", "version": "1.0.0", "main": "index.js"}).encode(),
            "package/index.js": b"module.exports = (s, n) => String(s).padStart(n, '*');\n",
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


WHEEL = wheel()
WHEEL_NAME = "drover_demo-1.0-py3-none-any.whl"
DEB = deb()
DEB_NAME = "drover-hello_1.0_all.deb"
PACKAGES = (f"Package: drover-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: Drover <test@drover.invalid>\n"
            f"Filename: ./{DEB_NAME}\nSize: {len(DEB)}\nSHA256: {hashlib.sha256(DEB).hexdigest()}\n"
            f"Description: says hello from a deb\n\n").encode()
PACKAGES_GZ = gzip.compress(PACKAGES, mtime=0)
RELEASE = (f"Origin: drover-test\nLabel: drover-test\nSuite: stable\nCodename: stable\nDate: Thu, 03 Dec 2026 00:00:00 UTC\nArchitectures: all amd64 arm64\n"
           f"SHA256:\n {hashlib.sha256(PACKAGES).hexdigest()} {len(PACKAGES)} Packages\n"
           f" {hashlib.sha256(PACKAGES_GZ).hexdigest()} {len(PACKAGES_GZ)} Packages.gz\n").encode()
TARBALL = npm_tarball()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, content_type="application/octet-stream"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = self.path.split("?")[0].replace("/./", "/")
        if path == "/_counts":
            with lock:
                return self.send(200, json.dumps(counts).encode(), "application/json")
        with lock:
            counts[path] = counts.get(path, 0) + 1
        base = f"http://{self.headers.get('Host')}"
        if path in ("/simple/drover-demo/", "/simple/drover_demo/"):
            sha = hashlib.sha256(WHEEL).hexdigest()
            page = f'<!DOCTYPE html><html><body><a href="/files/{WHEEL_NAME}#sha256={sha}">{WHEEL_NAME}</a></body></html>'
            return self.send(200, page.encode(), "text/html")
        if path == f"/files/{WHEEL_NAME}":
            return self.send(200, WHEEL)
        if path.startswith("/simple/"):
            return self.send(404, b"not found", "text/plain")
        if path == "/apt/Release":
            return self.send(200, RELEASE, "text/plain")
        if path == "/apt/Packages":
            return self.send(200, PACKAGES, "text/plain")
        if path == "/apt/Packages.gz":
            return self.send(200, PACKAGES_GZ)
        if path == f"/apt/{DEB_NAME}":
            return self.send(200, DEB)
        if path == "/npm/drover-left-pad":
            integrity = "sha512-" + base64.b64encode(hashlib.sha512(TARBALL).digest()).decode()
            meta = {"name": "drover-left-pad", "dist-tags": {"latest": "1.0.0"}, "versions": {"1.0.0": {
                "name": "drover-left-pad", "version": "1.0.0", "main": "index.js",
                "dist": {"tarball": f"{base}/npm/drover-left-pad/-/drover-left-pad-1.0.0.tgz", "integrity": integrity,
                         "shasum": hashlib.sha1(TARBALL).hexdigest()}}}}
            return self.send(200, json.dumps(meta).encode(), "application/json")
        if path == "/npm/drover-left-pad/-/drover-left-pad-1.0.0.tgz":
            return self.send(200, TARBALL)
        self.send(404, b"not found", "text/plain")


server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
print(f"listening {HOST}:{server.server_address[1]}", flush=True)
server.serve_forever()
