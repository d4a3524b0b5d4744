"""Build hook for the optional C accelerator of the hashing core (pool/_sha256d.c).

The extension links OpenSSL's libcrypto; if it cannot be built, installation goes on and
pool/hashing.py uses its pure-Python path (same answers, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pool._sha256d",
            sources=["pool/_sha256d.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
