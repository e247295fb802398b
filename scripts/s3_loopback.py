"""A real S3-compatible server on loopback for the object-storage tests and benchmark (moto's server, from
scripts/requirements-dataeng.txt), a proxy in front of it that can drop connections mid-download, and uploads.

    python scripts/s3_loopback.py serve PORT                     # moto S3 on 127.0.0.1:PORT (runs until killed)
    python scripts/s3_loopback.py proxy PORT UPSTREAM_PORT FLAG   # forwards; while FLAG exists, cuts replies > 4 KiB
    python scripts/s3_loopback.py mb ENDPOINT BUCKET               # creates a bucket
    python scripts/s3_loopback.py put ENDPOINT BUCKET KEY FILE     # uploads FILE (or '-' for an empty object)
    python scripts/s3_loopback.py rm ENDPOINT BUCKET KEY           # deletes an object

Credentials are moto's (any key is accepted); the tests pass the same through AWS_* variables.
"""

import os
import socket
import sys
import threading

CUT_AFTER = 4 * 1024


def client(endpoint):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )


def serve(port):
    from moto.server import main

    main(["-H", "127.0.0.1", "-p", str(port)])


def shut(*socks):
    """Shuts both directions of each socket, ignoring ones the peer already closed."""
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def pump_up(src, dst, state):
    """Client to server: every request resets the reply byte count."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            state["reply"] = 0
            dst.sendall(data)
    except OSError:
        pass
    finally:
        shut(src, dst)


def handle(conn, upstream_port, flag):
    up = socket.create_connection(("127.0.0.1", upstream_port))
    state = {"reply": 0}
    threading.Thread(target=pump_up, args=(conn, up, state), daemon=True).start()
    try:
        while True:
            data = up.recv(65536)
            if not data:
                break
            state["reply"] += len(data)
            if os.path.exists(flag) and state["reply"] > CUT_AFTER:
                # A dropped connection mid-body: send part of it, then reset.
                conn.sendall(data[: len(data) // 2])
                break
            conn.sendall(data)
    except OSError:
        pass
    finally:
        shut(conn, up)
        conn.close()
        up.close()


def proxy(port, upstream_port, flag):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(64)
    print("proxy ready", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=handle, args=(conn, upstream_port, flag), daemon=True).start()


def main(argv):
    command, args = argv[0], argv[1:]
    if command == "serve":
        serve(int(args[0]))
    elif command == "proxy":
        proxy(int(args[0]), int(args[1]), args[2])
    elif command == "mb":
        client(args[0]).create_bucket(Bucket=args[1])
    elif command == "put":
        endpoint, bucket, key, path = args
        if path == "-":
            client(endpoint).put_object(Bucket=bucket, Key=key, Body=b"")
        else:
            client(endpoint).upload_file(path, bucket, key)
    elif command == "rm":
        client(args[0]).delete_object(Bucket=args[1], Key=args[2])
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
