#!/usr/bin/env bash
# Makes a new random API key for `--api-keys-file`: prints the key (give it to the client; it is stored nowhere)
# on stderr, and the `name:sha256hex` line to append to the keys file on stdout.
#   scripts/api-key.sh crm-web >> keys.txt
set -euo pipefail
name="${1:-}"
if ! [[ "$name" =~ ^[A-Za-z0-9_.-]{1,64}$ ]]; then
  echo "usage: $0 NAME   (1 to 64 letters, digits, '_', '-' or '.')" >&2
  exit 2
fi
# 32 random bytes, URL-safe base64 without padding: 43 characters.
key="$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
digest="$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)"
echo "API key for '$name' (shown once): $key" >&2
echo "$name:$digest"
