"""LiberTEM-live's DECTRIS simulator, DectrisSim of libertem-dectris, as a peer of `serve`: run
by tests/python/test_dectris_sim_peer.py in .venv-dectris-sim's Python (deploy/lib/dectris-sim-venv.sh),
not in the test's.

    python dectris_sim_peer.py DUMP GROUPS FOOTER

DUMP is a file of recorded ZMQ message parts, each an int64 little-endian length and the bytes,
as DectrisSim reads it. DectrisSim binds a PUSH socket on a free port of 127.0.0.1; this prints
{"uri", "frames", "dheader"} as one JSON line and waits for a line on stdin. Then DectrisSim
sends the dump's dheader-1.0 part and the detector config (send_headers: two messages), GROUPS
messages of the next four parts each (send_frames), and with FOOTER 1 its own dseries_end-1.0
(send_footer); this prints {"sent": GROUPS} and waits for stdin to close before it exits."""

import json
import sys

import libertem_dectris


def main() -> None:
    dump, groups, footer = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    sim = libertem_dectris.DectrisSim(uri="tcp://127.0.0.1", filename=dump, random_port=True)
    print(json.dumps({"uri": sim.get_uri(), "frames": sim.get_detector_config().get_num_frames(),
                      "dheader": json.loads(sim.get_dheader_raw())}), flush=True)
    sys.stdin.readline()
    sim.send_headers()
    sim.send_frames(groups)
    if footer:
        sim.send_footer()
    print(json.dumps({"sent": groups}), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
