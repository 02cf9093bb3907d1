#!/usr/bin/env bash
# Build the llama.cpp baseline for bench_compare.py, from the llama-cpp-python source distribution
# on PyPI (the only place llama.cpp's source can be had here), outside the repo.
#
#   Tests/Reference/llamacpp/build_llamacpp.sh [OUT_DIR] [--no-python] [--python-only]
#
#   OUT_DIR   where the binaries go (default /work/llama-build): OUT_DIR/bin/llama-bench,
#             llama-quantize, llama-server, llama-cli (+ OUT_DIR/src: the unpacked sdist,
#             OUT_DIR/cmake: the CMake build tree, OUT_DIR/VERSION: what was built)
#   step 1    cmake -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release, -j$JOBS (default 2)
#   step 2    pip install llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION into $VENV
#             (default /work/venv) with CMAKE_ARGS="-DGGML_NATIVE=ON" (its own copy of the same
#             vendored llama.cpp; used for `python -m llama_cpp.server`)
# Env: LLAMA_CPP_PYTHON_VERSION (default 0.3.36), VENV, JOBS.
# Both steps take many minutes on 2 cores (~15-25 min each here).
#
# GGML_NATIVE=ON builds for *this* CPU (-march=native): the binaries may die with SIGILL on another
# machine of this kind (Zen 5 with AVX-512 vs Zen 3 with AVX2 only); rebuild there.
set -euo pipefail

OUT=/work/llama-build
DO_NATIVE=1
DO_PYTHON=1
for a in "$@"; do
  case "$a" in
    --no-python) DO_PYTHON=0 ;;
    --python-only) DO_NATIVE=0 ;;
    -h|--help) sed -n 2,17p "$0"; exit 0 ;;
    -*) echo "error: unknown option $a" >&2; exit 2 ;;
    *) OUT=$a ;;
  esac
done
VER=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
VENV=${VENV:-/work/venv}
JOBS=${JOBS:-2}
PIP="$VENV/bin/pip"
[ -x "$PIP" ] || { echo "error: no pip at $PIP (set VENV)" >&2; exit 1; }
command -v cmake >/dev/null || { echo "error: cmake not found (apt-get install cmake)" >&2; exit 1; }

mkdir -p "$OUT/src" "$OUT/bin"
OUT=$(cd "$OUT" && pwd)
SD="$OUT/src/llama_cpp_python-$VER"
if [ ! -d "$SD/vendor/llama.cpp/src" ]; then
  echo "== downloading llama-cpp-python==$VER source distribution"
  "$PIP" download --no-deps --no-binary :all: "llama-cpp-python==$VER" -d "$OUT/src"
  tar xzf "$OUT/src/llama_cpp_python-$VER.tar.gz" -C "$OUT/src"
fi
LC="$SD/vendor/llama.cpp"
# The sdist has no .git, so llama.cpp's build-info says "unknown": take the commit that the
# llama-cpp-python changelog names for this release ("update llama.cpp to ggml-org/llama.cpp@HASH").
COMMIT=$(awk -v v="## [$VER]" '$0==v{f=1;next} f&&/^## \[/{exit} f' "$SD/CHANGELOG.md" \
         | grep -o -m1 'llama\.cpp@[0-9a-f]\{7,40\}' | head -1 | cut -d@ -f2 || true)
COMMIT=${COMMIT:-unknown}
echo "== llama-cpp-python $VER vendors llama.cpp commit $COMMIT (from its CHANGELOG)"

if [ "$DO_NATIVE" = 1 ]; then
  echo "== configuring llama.cpp in $OUT/cmake"
  # UI off and no prebuilt-UI download (no network here); no OpenSSL (no HTTPS needed for a local
  # server); tests/examples off to save build time; static libraries so bin/ is self-contained.
  cmake -S "$LC" -B "$OUT/cmake" \
    -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_COMMIT="$COMMIT" -DLLAMA_BUILD_NUMBER=0
  echo "== building llama-bench llama-quantize llama-server llama-cli (-j$JOBS)"
  t0=$(date +%s)
  cmake --build "$OUT/cmake" -j"$JOBS" --target llama-bench llama-quantize llama-server llama-cli
  echo "== build took $(( $(date +%s) - t0 )) s"
  for b in llama-bench llama-quantize llama-server llama-cli; do
    cp -f "$OUT/cmake/bin/$b" "$OUT/bin/$b"
  done
  {
    echo "llama-cpp-python $VER"
    echo "llama.cpp commit $COMMIT"
    echo "cmake -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release (+ UI/OpenSSL/tests off, static)"
    echo "built on: $(lscpu | sed -n 's/^Model name: *//p') ($(gcc --version | head -1))"
    "$OUT/bin/llama-cli" --version 2>&1 | grep -i -E 'version|built' || true
  } | tee "$OUT/VERSION"
  echo "== binaries in $OUT/bin"
fi

if [ "$DO_PYTHON" = 1 ]; then
  echo "== pip install llama-cpp-python[server]==$VER into $VENV (CMAKE_ARGS=-DGGML_NATIVE=ON)"
  t0=$(date +%s)
  # Build from the sdist already downloaded (no second download); MAKEFLAGS/CMAKE_BUILD_PARALLEL_LEVEL
  # keep it at $JOBS jobs.
  CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF" \
  CMAKE_BUILD_PARALLEL_LEVEL="$JOBS" \
    "$PIP" install --no-binary llama-cpp-python \
    "llama-cpp-python[server] @ file://$OUT/src/llama_cpp_python-$VER.tar.gz"
  echo "== pip build took $(( $(date +%s) - t0 )) s"
  "$VENV/bin/python" -c 'import llama_cpp; print("llama_cpp", llama_cpp.__version__)'
fi
