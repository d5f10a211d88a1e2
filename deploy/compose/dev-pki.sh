#!/bin/sh
# Makes what the compose stack needs and must not be committed: a
# development CA, certificates for Mosquitto, Vigil and the simulated plant,
# MQTT passwords and Mosquitto's hashed password file, and Grafana's admin
# password. For development and trials only: a plant has its own PKI.
#
#   ./dev-pki.sh [DIR]        (default: secrets/ beside this script)
#
# Needs openssl and mosquitto_passwd (Debian: mosquitto; or set
# MOSQUITTO_PASSWD to a command such as
# "docker run --rm -v $PWD/secrets:/s -w /s eclipse-mosquitto:2 mosquitto_passwd").
# No secret is put on a command line: passwords go from openssl's output to
# files, and mosquitto_passwd -U hashes the file in place.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/secrets}
passwd_tool=${MOSQUITTO_PASSWD:-mosquitto_passwd}
days=825

command -v openssl >/dev/null || { echo "dev-pki.sh: openssl is needed" >&2; exit 1; }
if [ -z "${MOSQUITTO_PASSWD:-}" ] && ! command -v mosquitto_passwd >/dev/null; then
  echo "dev-pki.sh: mosquitto_passwd is needed (Debian: apt-get install mosquitto), or set MOSQUITTO_PASSWD" >&2
  exit 1
fi
if [ -e "$out/ca.key" ]; then
  echo "dev-pki.sh: $out already has a CA; remove the directory to start again" >&2
  exit 1
fi

umask 077
mkdir -p "$out"
chmod 700 "$out"
cd "$out"

# The CA (ECDSA P-256).
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout ca.key -out ca.crt -days "$days" -subj "/O=Vigil dev/CN=Vigil dev CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# issue NAME SUBJECT_ALT_NAMES EXTENDED_KEY_USAGE: NAME.crt and NAME.key.
issue() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1.key" -out "$1.csr" -subj "/O=Vigil dev/CN=$1" 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' "$3" "$2" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out "$1.crt" -days "$days" -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
# The broker is reached as mosquitto inside the stack and as localhost from
# the host (port 8883 is published on loopback).
issue mosquitto "DNS:mosquitto,DNS:localhost,IP:127.0.0.1,IP:::1" serverAuth
issue vigil "DNS:vigil" clientAuth
issue plant-sim "DNS:plant-sim" clientAuth
rm -f ca.srl

# Passwords: random, one file each, and Mosquitto's password file hashed
# in place (PBKDF2-SHA512).
vigil_pw=$(openssl rand -hex 24)
sim_pw=$(openssl rand -hex 24)
printf '%s\n' "$vigil_pw" >vigil-mqtt-password
printf '%s\n' "$sim_pw" >plant-sim-mqtt-password
printf 'vigil:%s\nplant-sim:%s\n' "$vigil_pw" "$sim_pw" >passwd
$passwd_tool -U passwd
openssl rand -hex 24 >grafana-admin-password

# The containers run as their own users (Mosquitto 1883, Vigil 65532,
# Grafana 472), and a bind mount keeps the host's owner and mode, so the
# files are readable by all; the directory is yours alone (0700), which
# keeps the host's other users out. The CA key stays private: no container
# needs it.
chmod 644 ./*
chmod 600 ca.key
echo "dev-pki.sh: wrote $out (CA valid for $days days)"
