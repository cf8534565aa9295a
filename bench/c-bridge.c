/*
 * The C bridge floor of hotspot-bench: the least durable work a hotspot agent can do for a
 * packet forwarder's uplinks, written plainly in C. For each GWMP v2 PUSH_DATA datagram it
 * answers PUSH_ACK, commits the datagram's frames to a SQLite outbox (WAL, synchronous=NORMAL)
 * in one transaction, publishes each at QoS 1 with libmosquitto (its own network thread, as
 * hotspotd uses it) and deletes a row once the broker has acknowledged it.
 *
 *   c-bridge UDP_PORT BROKER_PORT DATABASE TOPIC
 *
 * It runs until SIGTERM. No metering, no protobuf: the floor a Swift agent is measured against.
 */
#include <mosquitto.h>
#include <sqlite3.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FRAMES 64
#define MAX_ACKS 65536

static volatile sig_atomic_t stopping = 0;
static void on_term(int signal) { (void)signal; stopping = 1; }

/* PUBACKs arrive on libmosquitto's thread; the main loop deletes their rows. */
static pthread_mutex_t acks_lock = PTHREAD_MUTEX_INITIALIZER;
static int acked[MAX_ACKS];
static int acked_count = 0;
/* Message id → outbox row, for the rows in flight. */
static long long row_of_mid[65536];

static void on_publish(struct mosquitto *mosq, void *context, int mid) {
    (void)mosq; (void)context;
    pthread_mutex_lock(&acks_lock);
    if (acked_count < MAX_ACKS) acked[acked_count++] = mid;
    pthread_mutex_unlock(&acks_lock);
}

static int decode_base64(const char *in, size_t length, unsigned char *out, size_t capacity) {
    static const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned value = 0;
    int bits = 0;
    size_t written = 0;
    for (size_t i = 0; i < length && in[i] != '='; i++) {
        const char *position = strchr(alphabet, in[i]);
        if (!position || !*position) return -1;
        value = (value << 6) | (unsigned)(position - alphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (written == capacity) return -1;
            out[written++] = (unsigned char)(value >> bits);
        }
    }
    return (int)written;
}

static void check(int code, sqlite3 *db, const char *what) {
    if (code != SQLITE_OK && code != SQLITE_DONE && code != SQLITE_ROW) {
        fprintf(stderr, "c-bridge: %s: %s\n", what, sqlite3_errmsg(db));
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: c-bridge UDP_PORT BROKER_PORT DATABASE TOPIC\n");
        return 64;
    }
    const char *topic = argv[4];
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);

    sqlite3 *db;
    check(sqlite3_open(argv[3], &db), db, "open");
    check(sqlite3_exec(db,
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
        "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL);",
        NULL, NULL, NULL), db, "schema");
    sqlite3_stmt *insert, *delete;
    check(sqlite3_prepare_v2(db, "INSERT INTO outbox (payload) VALUES (?)", -1, &insert, NULL), db, "prepare insert");
    check(sqlite3_prepare_v2(db, "DELETE FROM outbox WHERE id = ?", -1, &delete, NULL), db, "prepare delete");

    mosquitto_lib_init();
    struct mosquitto *mosq = mosquitto_new("hotspot-bench-c-bridge", true, NULL);
    mosquitto_max_inflight_messages_set(mosq, 100);
    mosquitto_publish_callback_set(mosq, on_publish);
    if (mosquitto_connect(mosq, "127.0.0.1", atoi(argv[2]), 30) != MOSQ_ERR_SUCCESS || mosquitto_loop_start(mosq) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "c-bridge: cannot connect to the broker\n");
        return 1;
    }

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1]))};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        perror("c-bridge: bind");
        return 1;
    }

    unsigned char datagram[65536];
    unsigned char payloads[MAX_FRAMES][256];
    int lengths[MAX_FRAMES];
    long long rows[MAX_FRAMES];
    while (!stopping) {
        struct pollfd descriptor = {.fd = fd, .events = POLLIN};
        int ready = poll(&descriptor, 1, 10);
        if (ready > 0) {
            struct sockaddr_in from;
            socklen_t from_length = sizeof from;
            ssize_t count = recvfrom(fd, datagram, sizeof datagram - 1, 0, (struct sockaddr *)&from, &from_length);
            if (count >= 12 && datagram[0] == 2 && datagram[3] == 0x00) {
                unsigned char ack[4] = {2, datagram[1], datagram[2], 0x01};
                sendto(fd, ack, sizeof ack, 0, (struct sockaddr *)&from, from_length);
                datagram[count] = 0;
                /* Each rxpk's "data": its PHYPayload, base64. */
                int frames = 0;
                const char *cursor = (const char *)datagram + 12;
                while (frames < MAX_FRAMES && (cursor = strstr(cursor, "\"data\":\"")) != NULL) {
                    cursor += 8;
                    const char *end = strchr(cursor, '"');
                    if (!end) break;
                    int length = decode_base64(cursor, (size_t)(end - cursor), payloads[frames], sizeof payloads[frames]);
                    if (length > 0) lengths[frames++] = length;
                    cursor = end;
                }
                if (frames > 0) {
                    check(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), db, "begin");
                    for (int i = 0; i < frames; i++) {
                        sqlite3_bind_blob(insert, 1, payloads[i], lengths[i], SQLITE_STATIC);
                        check(sqlite3_step(insert), db, "insert");
                        sqlite3_reset(insert);
                        rows[i] = sqlite3_last_insert_rowid(db);
                    }
                    check(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), db, "commit");
                    for (int i = 0; i < frames; i++) {
                        int mid = 0;
                        mosquitto_publish(mosq, &mid, topic, lengths[i], payloads[i], 1, false);
                        row_of_mid[mid & 0xFFFF] = rows[i];
                    }
                }
            }
        }
        /* Rows the broker acknowledged since the last turn. */
        int mids[MAX_ACKS];
        pthread_mutex_lock(&acks_lock);
        int count = acked_count;
        memcpy(mids, acked, (size_t)count * sizeof(int));
        acked_count = 0;
        pthread_mutex_unlock(&acks_lock);
        if (count > 0) {
            check(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), db, "begin");
            for (int i = 0; i < count; i++) {
                sqlite3_bind_int64(delete, 1, row_of_mid[mids[i] & 0xFFFF]);
                check(sqlite3_step(delete), db, "delete");
                sqlite3_reset(delete);
            }
            check(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), db, "commit");
        }
    }
    mosquitto_disconnect(mosq);
    mosquitto_loop_stop(mosq, false);
    mosquitto_destroy(mosq);
    sqlite3_finalize(insert);
    sqlite3_finalize(delete);
    sqlite3_close(db);
    return 0;
}
