#ifndef HOTSPOTD_SPI_H
#define HOTSPOTD_SPI_H

#include <stddef.h>
#include <stdint.h>

/// One segment of a full-duplex SPI message. `tx` and `rx` may be NULL (zeros are sent,
/// received bytes are discarded). Chip select stays asserted between the segments of one
/// message unless `cs_change` is set.
typedef struct hs_spi_segment {
    const uint8_t *tx;
    uint8_t *rx;
    uint32_t length;
    uint32_t speed_hz;      /* 0: the device's configured speed */
    uint16_t delay_usecs;   /* after this segment, before the next or before CS is released */
    uint8_t bits_per_word;  /* 0: the device's configured width */
    uint8_t cs_change;
} hs_spi_segment;

/// The most segments one SPI_IOC_MESSAGE can carry: its size must fit the ioctl's 14-bit size field.
#define HS_SPI_MAX_SEGMENTS 511

/// Opens an spidev node read-write. Returns the file descriptor, or -errno.
int hs_spi_open(const char *path);

/// Sets mode (0-3), bits per word and maximum speed.
/// Returns 0, or -errno of the first ioctl that failed.
int hs_spi_configure(int fd, uint8_t mode, uint8_t bits_per_word, uint32_t speed_hz);

/// Reads the mode, bits per word and speed the driver holds. Returns 0 or -errno.
int hs_spi_read_configuration(int fd, uint8_t *mode, uint8_t *bits_per_word, uint32_t *speed_hz);

/// Runs `count` segments as one message with SPI_IOC_MESSAGE(count). Returns 0 or -errno
/// (-EINVAL for 0 or more than HS_SPI_MAX_SEGMENTS segments).
int hs_spi_transfer(int fd, const hs_spi_segment *segments, uint32_t count);

/// Closes the descriptor.
void hs_spi_close(int fd);

/// The layout of the kernel's struct spi_ioc_transfer as this build sees it, so tests can
/// pin it: pointers travel as __u64 on 32-bit and 64-bit ARM alike, and the struct is 32 bytes.
typedef struct hs_spi_ioc_layout {
    size_t size;
    size_t tx_buf;
    size_t rx_buf;
    size_t len;
    size_t speed_hz;
    size_t delay_usecs;
    size_t bits_per_word;
    size_t cs_change;
    size_t tx_nbits;
    size_t rx_nbits;
    size_t tx_buf_width;
} hs_spi_ioc_layout;

hs_spi_ioc_layout hs_spi_ioc_transfer_layout(void);

/// The ioctl request number SPI_IOC_MESSAGE(count).
unsigned long hs_spi_ioc_message_request(uint32_t count);

/// Fills `out` (an array of `count` kernel transfer structs, `out_size` bytes) from
/// `segments` exactly as hs_spi_transfer would before its ioctl. Returns 0 or -EINVAL.
int hs_spi_fill_transfers(const hs_spi_segment *segments, uint32_t count, void *out, size_t out_size);

#endif
