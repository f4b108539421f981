/*
 * MacVm guest IP agent for macOS guests on the Apple driver (docs/guest-protocol.md, "IP configuration").
 * Connects to the host over vsock (CID 2, port 51011); the host writes one line: "wait" or
 * {"ip":"…","mask":"…","gw":"…"[,"mac":"…"]}. After applying a configuration the agent writes
 * "applied <json>\n" on the same connection. Reference code: build and test it on a Mac.
 *
 * usage: macvm-ip-agent [INTERFACE]   (default en0)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/vsock.h>
#include <unistd.h>

#define HOST_CID 2
#define IP_PORT 51011

/* Copies the string value of "key":"…" in json into out; 0 when found. Our JSON is flat, without escapes. */
static int field(const char *json, const char *key, char *out, size_t size) {
    char pattern[32];
    snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
    const char *start = strstr(json, pattern);
    if (!start) return -1;
    start += strlen(pattern);
    const char *end = strchr(start, '"');
    if (!end || (size_t)(end - start) >= size) return -1;
    memcpy(out, start, (size_t)(end - start));
    out[end - start] = 0;
    /* Only characters an address can hold: nothing reaches the shell that could do harm. */
    for (char *c = out; *c; c++)
        if (!strchr("0123456789abcdefABCDEF.:", *c)) return -1;
    return 0;
}

static int run(const char *command) {
    int rc = system(command);
    if (rc != 0) fprintf(stderr, "macvm-ip-agent: '%s' failed (%d)\n", command, rc);
    return rc;
}

static int apply(const char *json, const char *nic) {
    char ip[64], mask[64], gw[64], mac[64], cmd[256];
    if (field(json, "ip", ip, sizeof ip) || field(json, "mask", mask, sizeof mask) || field(json, "gw", gw, sizeof gw)) {
        fprintf(stderr, "macvm-ip-agent: not a configuration: %s\n", json);
        return -1;
    }
    if (field(json, "mac", mac, sizeof mac) == 0) {
        snprintf(cmd, sizeof cmd, "/sbin/ifconfig %s ether %s", nic, mac);
        run(cmd); /* best effort: a NIC that refuses keeps the snapshot's MAC */
    }
    snprintf(cmd, sizeof cmd, "/sbin/ifconfig %s inet %s netmask %s up", nic, ip, mask);
    if (run(cmd)) return -1;
    snprintf(cmd, sizeof cmd, "/sbin/route -n delete default >/dev/null 2>&1");
    system(cmd);
    snprintf(cmd, sizeof cmd, "/sbin/route -n add default %s", gw);
    if (run(cmd)) return -1;
    fprintf(stderr, "macvm-ip-agent: %s %s/%s via %s\n", nic, ip, mask, gw);
    return 0;
}

int main(int argc, char **argv) {
    const char *nic = argc > 1 ? argv[1] : "en0";
    char applied[512] = "";
    setvbuf(stderr, NULL, _IOLBF, 0);
    for (;;) {
        usleep(applied[0] ? 1000000 : 200000);
        int s = socket(AF_VSOCK, SOCK_STREAM, 0);
        if (s < 0) { perror("macvm-ip-agent: socket"); sleep(1); continue; }
        struct timeval timeout = { .tv_sec = 1, .tv_usec = 0 };
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        struct sockaddr_vm addr;
        memset(&addr, 0, sizeof addr);
        addr.svm_len = sizeof addr;
        addr.svm_family = AF_VSOCK;
        addr.svm_cid = HOST_CID;
        addr.svm_port = IP_PORT;
        if (connect(s, (struct sockaddr *)&addr, sizeof addr) != 0) { close(s); continue; }
        char line[512];
        size_t n = 0;
        while (n < sizeof line - 1) {
            ssize_t got = read(s, line + n, 1);
            if (got <= 0 || line[n] == '\n') break;
            n++;
        }
        line[n] = 0;
        if (n > 0 && line[n - 1] == '\r') line[--n] = 0;
        if (strcmp(line, "wait") == 0) { close(s); continue; }
        if (line[0] == '{') {
            if (strcmp(line, applied) == 0 || apply(line, nic) == 0) {
                snprintf(applied, sizeof applied, "%s", line);
                dprintf(s, "applied %s\n", applied);
            }
        } else if (n > 0) {
            fprintf(stderr, "macvm-ip-agent: ignored reply: %s\n", line);
        }
        close(s);
    }
}
