/* The hotspotd GPIO API over libgpiod's v1 API (libgpiod 1.x). */
#if HOTSPOTD_GPIOD_API == 1

#include "hotspotd_gpio.h"

#include <errno.h>
#include <gpiod.h>
#include <stdlib.h>
#include <string.h>

#ifndef GPIOD_LINE_BULK_MAX_LINES
#error "HOTSPOTD_GPIOD_API=1 but gpiod.h is not libgpiod 1.x: set HOTSPOTD_GPIOD_API=2"
#endif

struct hs_gpio_chip { struct gpiod_chip *chip; };
struct hs_gpio_line { struct gpiod_line *line; };

const char *hs_gpio_api(void) { return "1"; }

hs_gpio_chip *hs_gpio_chip_open(const char *path) {
    struct gpiod_chip *raw = gpiod_chip_open(path);
    if (raw == NULL) return NULL;
    hs_gpio_chip *chip = calloc(1, sizeof(*chip));
    if (chip == NULL) { gpiod_chip_close(raw); errno = ENOMEM; return NULL; }
    chip->chip = raw;
    return chip;
}

void hs_gpio_chip_close(hs_gpio_chip *chip) {
    if (chip == NULL) return;
    gpiod_chip_close(chip->chip);
    free(chip);
}

int hs_gpio_chip_label(hs_gpio_chip *chip, char *buffer, size_t size) {
    const char *label = gpiod_chip_label(chip->chip);
    if (label == NULL || size == 0) return -EINVAL;
    strncpy(buffer, label, size - 1);
    buffer[size - 1] = '\0';
    return 0;
}

int hs_gpio_chip_line_count(hs_gpio_chip *chip) {
    return (int)gpiod_chip_num_lines(chip->chip);
}

hs_gpio_line *hs_gpio_request(hs_gpio_chip *chip, unsigned int offset, const char *consumer,
                              int direction, int edges, int active_low, int initial) {
    struct gpiod_line *raw = gpiod_chip_get_line(chip->chip, offset);
    if (raw == NULL) return NULL;
    struct gpiod_line_request_config config;
    memset(&config, 0, sizeof(config));
    config.consumer = consumer;
    config.flags = active_low ? GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW : 0;
    if (direction == HS_GPIO_OUTPUT) {
        config.request_type = GPIOD_LINE_REQUEST_DIRECTION_OUTPUT;
    } else {
        switch (edges) {
        case HS_GPIO_EDGE_RISING: config.request_type = GPIOD_LINE_REQUEST_EVENT_RISING_EDGE; break;
        case HS_GPIO_EDGE_FALLING: config.request_type = GPIOD_LINE_REQUEST_EVENT_FALLING_EDGE; break;
        case HS_GPIO_EDGE_BOTH: config.request_type = GPIOD_LINE_REQUEST_EVENT_BOTH_EDGES; break;
        default: config.request_type = GPIOD_LINE_REQUEST_DIRECTION_INPUT; break;
        }
    }
    if (gpiod_line_request(raw, &config, initial ? 1 : 0) < 0) return NULL;
    hs_gpio_line *line = calloc(1, sizeof(*line));
    if (line == NULL) { gpiod_line_release(raw); errno = ENOMEM; return NULL; }
    line->line = raw;
    return line;
}

int hs_gpio_get(hs_gpio_line *line) {
    int value = gpiod_line_get_value(line->line);
    return value < 0 ? -errno : value;
}

int hs_gpio_set(hs_gpio_line *line, int value) {
    return gpiod_line_set_value(line->line, value ? 1 : 0) < 0 ? -errno : 0;
}

int hs_gpio_wait_event(hs_gpio_line *line, int64_t timeout_ns) {
    struct timespec timeout = { .tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000 };
    int result = gpiod_line_event_wait(line->line, &timeout);
    return result < 0 ? -errno : result;
}

int hs_gpio_read_event(hs_gpio_line *line, int *rising, uint64_t *timestamp_ns) {
    struct gpiod_line_event event;
    if (gpiod_line_event_read(line->line, &event) < 0) return -errno;
    *rising = event.event_type == GPIOD_LINE_EVENT_RISING_EDGE;
    *timestamp_ns = (uint64_t)event.ts.tv_sec * 1000000000u + (uint64_t)event.ts.tv_nsec;
    return 0;
}

void hs_gpio_release(hs_gpio_line *line) {
    if (line == NULL) return;
    gpiod_line_release(line->line);
    free(line);
}

#endif
