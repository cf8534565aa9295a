#ifndef HOTSPOTD_GPIO_H
#define HOTSPOTD_GPIO_H

/*
 * One small GPIO API over libgpiod, implemented for the v1 API (libgpiod 1.x: Debian 12,
 * Raspberry Pi OS bookworm) and the v2 API (libgpiod 2.x: Raspberry Pi OS trixie).
 * HOTSPOTD_GPIOD_API (1 or 2) picks the implementation at build time; Package.swift sets it
 * from the version pkg-config reports. Every call that fails returns NULL or a negative errno.
 */

#include <stddef.h>
#include <stdint.h>

typedef struct hs_gpio_chip hs_gpio_chip;
typedef struct hs_gpio_line hs_gpio_line;

enum hs_gpio_direction { HS_GPIO_INPUT = 0, HS_GPIO_OUTPUT = 1 };
enum hs_gpio_edges { HS_GPIO_EDGE_NONE = 0, HS_GPIO_EDGE_RISING = 1, HS_GPIO_EDGE_FALLING = 2, HS_GPIO_EDGE_BOTH = 3 };

/// "1" or "2": the libgpiod API this build was compiled against.
const char *hs_gpio_api(void);

/// Opens a chip by path (/dev/gpiochipN). NULL with errno set on failure.
hs_gpio_chip *hs_gpio_chip_open(const char *path);
void hs_gpio_chip_close(hs_gpio_chip *chip);

/// Copies the chip's label (e.g. "pinctrl-bcm2711", "pinctrl-rp1") into `buffer`. 0 or -errno.
int hs_gpio_chip_label(hs_gpio_chip *chip, char *buffer, size_t size);

/// The number of lines on the chip, or -errno.
int hs_gpio_chip_line_count(hs_gpio_chip *chip);

/// Requests one line. `initial` is the logical output value (active-low applied) for outputs;
/// `edges` applies to inputs only; event timestamps come from CLOCK_MONOTONIC.
/// NULL with errno set on failure (EBUSY: the line is held by another consumer).
hs_gpio_line *hs_gpio_request(hs_gpio_chip *chip, unsigned int offset, const char *consumer,
                              int direction, int edges, int active_low, int initial);

/// The logical value (0 or 1), or -errno.
int hs_gpio_get(hs_gpio_line *line);

/// Sets the logical value. 0 or -errno.
int hs_gpio_set(hs_gpio_line *line, int value);

/// Waits for an edge event: 1 when one is pending, 0 on timeout, -errno on error.
int hs_gpio_wait_event(hs_gpio_line *line, int64_t timeout_ns);

/// Reads one pending event. `rising` is 1 for a rising logical edge. 0 or -errno.
int hs_gpio_read_event(hs_gpio_line *line, int *rising, uint64_t *timestamp_ns);

void hs_gpio_release(hs_gpio_line *line);

#endif
