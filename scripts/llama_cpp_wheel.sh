#!/usr/bin/env bash
# Builds llama-cpp-python from source once per (version, CPU feature set) into a wheel cache and
# installs it into the given venv. The wheel is cached outside the checkout, so a second clone,
# `make clean-venv` or CI on the same machine installs it in seconds.
#
# Why not pip's default build: its default -march=native build enables every extension the
# compiler sees, AMX included, and on machines whose kernel does not grant AMX tile state the
# first matrix product dies with SIGILL (`tilezero` in ggml_backend_amx_mul_mat). So the
# instruction sets are read from /proc/cpuinfo here and passed one by one; AMX never is.
# OpenMP is off so ggml uses its own thread pool instead of a second OpenMP runtime beside torch's.
set -euo pipefail

VERSION="${LLAMA_CPP_VERSION:-0.3.36}"
VENV_PYTHON="${1:?usage: llama_cpp_wheel.sh VENV_PYTHON}"
CACHE="${DOCCHAT_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/docchat/wheels}"

cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
has() { [[ "$cpu_flags" == *" $1 "* ]]; }

cmake_args=(-DGGML_NATIVE=OFF -DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF -DGGML_AMX_TILE=OFF
            -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
feature_tag=""
for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx_vnni:AVX_VNNI avx512f:AVX512 \
            avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
  cpu_flag="${pair%%:*}"; ggml_option="${pair##*:}"
  if has "$cpu_flag"; then
    cmake_args+=("-DGGML_${ggml_option}=ON"); feature_tag+="-${cpu_flag}"
  else
    cmake_args+=("-DGGML_${ggml_option}=OFF")
  fi
done

wheel_dir="$CACHE/llama_cpp_python-${VERSION}${feature_tag:-generic}"
mkdir -p "$wheel_dir"
if ! compgen -G "$wheel_dir/llama_cpp_python-*.whl" >/dev/null; then
  echo "building llama-cpp-python $VERSION for this CPU (${feature_tag#-}; AMX off)."
  echo "This happens once per machine and takes about 10 minutes on 2 cores; later installs use $wheel_dir."
  log="$wheel_dir/build.log"
  # Ninja prints [done/total] per compiled file: show that as one updating progress line.
  set +e
  CMAKE_ARGS="${cmake_args[*]}" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$VENV_PYTHON" -m pip wheel --no-cache-dir --no-deps --disable-pip-version-check -v \
    "llama-cpp-python==${VERSION}" -w "$wheel_dir.tmp" 2>&1 | tee "$log" | \
    awk '/^ *\[[0-9]+\/[0-9]+\]/ { split(substr($1, 2), n, "/"); \
           printf "\r  compiling llama.cpp: %d of %d files (%d%%)  ", n[1], n[2], 100 * n[1] / n[2]; \
           fflush() } END { print "" }'
  status="${PIPESTATUS[0]}"
  set -e
  if [ "$status" != 0 ]; then
    echo "llama-cpp-python build failed (exit $status); the last lines of $log:" >&2
    tail -30 "$log" >&2
    rm -rf "$wheel_dir.tmp"
    exit "$status"
  fi
  mv "$wheel_dir.tmp"/llama_cpp_python-*.whl "$wheel_dir"/ && rm -rf "$wheel_dir.tmp"
fi
"$VENV_PYTHON" -m pip install --quiet --disable-pip-version-check "$wheel_dir"/llama_cpp_python-*.whl
