/* The hotspotd GPIO API over libgpiod's v2 API (libgpiod 2.x). */
#if HOTSPOTD_GPIOD_API == 2

#include "hotspotd_gpio.h"

#include <errno.h>
#include <gpiod.h>
#include <stdlib.h>
#include <string.h>

#ifdef GPIOD_LINE_BULK_MAX_LINES
#error "HOTSPOTD_GPIOD_API=2 but gpiod.h is libgpiod 1.x: set HOTSPOTD_GPIOD_API=1"
#endif

struct hs_gpio_chip { struct gpiod_chip *chip; };
struct hs_gpio_line {
    struct gpiod_line_request *request;
    struct gpiod_edge_event_buffer *events;
    unsigned int offset;
};

const char *hs_gpio_api(void) { return "2"; }

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
    if (size == 0) return -EINVAL;
    struct gpiod_chip_info *info = gpiod_chip_get_info(chip->chip);
    if (info == NULL) return -errno;
    strncpy(buffer, gpiod_chip_info_get_label(info), size - 1);
    buffer[size - 1] = '\0';
    gpiod_chip_info_free(info);
    return 0;
}

int hs_gpio_chip_line_count(hs_gpio_chip *chip) {
    struct gpiod_chip_info *info = gpiod_chip_get_info(chip->chip);
    if (info == NULL) return -errno;
    int count = (int)gpiod_chip_info_get_num_lines(info);
    gpiod_chip_info_free(info);
    return count;
}

hs_gpio_line *hs_gpio_request(hs_gpio_chip *chip, unsigned int offset, const char *consumer,
                              int direction, int edges, int active_low, int initial) {
    struct gpiod_line_settings *settings = gpiod_line_settings_new();
    struct gpiod_line_config *line_config = gpiod_line_config_new();
    struct gpiod_request_config *request_config = gpiod_request_config_new();
    hs_gpio_line *line = calloc(1, sizeof(*line));
    int saved = ENOMEM;
    if (settings == NULL || line_config == NULL || request_config == NULL || line == NULL) goto fail;

    gpiod_line_settings_set_active_low(settings, active_low != 0);
    if (direction == HS_GPIO_OUTPUT) {
        gpiod_line_settings_set_direction(settings, GPIOD_LINE_DIRECTION_OUTPUT);
        gpiod_line_settings_set_output_value(settings, initial ? GPIOD_LINE_VALUE_ACTIVE : GPIOD_LINE_VALUE_INACTIVE);
    } else {
        gpiod_line_settings_set_direction(settings, GPIOD_LINE_DIRECTION_INPUT);
        enum gpiod_line_edge edge = GPIOD_LINE_EDGE_NONE;
        switch (edges) {
        case HS_GPIO_EDGE_RISING: edge = GPIOD_LINE_EDGE_RISING; break;
        case HS_GPIO_EDGE_FALLING: edge = GPIOD_LINE_EDGE_FALLING; break;
        case HS_GPIO_EDGE_BOTH: edge = GPIOD_LINE_EDGE_BOTH; break;
        default: break;
        }
        gpiod_line_settings_set_edge_detection(settings, edge);
        gpiod_line_settings_set_event_clock(settings, GPIOD_LINE_CLOCK_MONOTONIC);
    }
    if (gpiod_line_config_add_line_settings(line_config, &offset, 1, settings) < 0) { saved = errno; goto fail; }
    gpiod_request_config_set_consumer(request_config, consumer);
    line->request = gpiod_chip_request_lines(chip->chip, request_config, line_config);
    if (line->request == NULL) { saved = errno; goto fail; }
    line->events = gpiod_edge_event_buffer_new(1);
    if (line->events == NULL) { gpiod_line_request_release(line->request); saved = ENOMEM; goto fail; }
    line->offset = offset;
    gpiod_line_settings_free(settings);
    gpiod_line_config_free(line_config);
    gpiod_request_config_free(request_config);
    return line;

fail:
    gpiod_line_settings_free(settings);
    gpiod_line_config_free(line_config);
    gpiod_request_config_free(request_config);
    free(line);
    errno = saved;
    return NULL;
}

int hs_gpio_get(hs_gpio_line *line) {
    enum gpiod_line_value value = gpiod_line_request_get_value(line->request, line->offset);
    if (value == GPIOD_LINE_VALUE_ERROR) return -errno;
    return value == GPIOD_LINE_VALUE_ACTIVE ? 1 : 0;
}

int hs_gpio_set(hs_gpio_line *line, int value) {
    int result = gpiod_line_request_set_value(line->request, line->offset,
                                              value ? GPIOD_LINE_VALUE_ACTIVE : GPIOD_LINE_VALUE_INACTIVE);
    return result < 0 ? -errno : 0;
}

int hs_gpio_wait_event(hs_gpio_line *line, int64_t timeout_ns) {
    int result = gpiod_line_request_wait_edge_events(line->request, timeout_ns);
    return result < 0 ? -errno : result;
}

int hs_gpio_read_event(hs_gpio_line *line, int *rising, uint64_t *timestamp_ns) {
    int count = gpiod_line_request_read_edge_events(line->request, line->events, 1);
    if (count < 0) return -errno;
    if (count == 0) return -EAGAIN;
    struct gpiod_edge_event *event = gpiod_edge_event_buffer_get_event(line->events, 0);
    *rising = gpiod_edge_event_get_event_type(event) == GPIOD_EDGE_EVENT_RISING_EDGE;
    *timestamp_ns = gpiod_edge_event_get_timestamp_ns(event);
    return 0;
}

void hs_gpio_release(hs_gpio_line *line) {
    if (line == NULL) return;
    gpiod_line_request_release(line->request);
    gpiod_edge_event_buffer_free(line->events);
    free(line);
}

#endif
