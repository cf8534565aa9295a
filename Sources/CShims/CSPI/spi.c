#include "hotspotd_spi.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/spi/spidev.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

_Static_assert(sizeof(struct spi_ioc_transfer) == 32, "struct spi_ioc_transfer must be 32 bytes on every ABI");
_Static_assert(sizeof(((struct spi_ioc_transfer *)0)->tx_buf) == 8, "tx_buf travels as __u64");

int hs_spi_open(const char *path) {
    int fd = open(path, O_RDWR | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int hs_spi_configure(int fd, uint8_t mode, uint8_t bits_per_word, uint32_t speed_hz) {
    uint8_t m = mode;
    if (ioctl(fd, SPI_IOC_WR_MODE, &m) < 0) return -errno;
    uint8_t bits = bits_per_word;
    if (ioctl(fd, SPI_IOC_WR_BITS_PER_WORD, &bits) < 0) return -errno;
    uint32_t speed = speed_hz;
    if (ioctl(fd, SPI_IOC_WR_MAX_SPEED_HZ, &speed) < 0) return -errno;
    return 0;
}

int hs_spi_read_configuration(int fd, uint8_t *mode, uint8_t *bits_per_word, uint32_t *speed_hz) {
    if (ioctl(fd, SPI_IOC_RD_MODE, mode) < 0) return -errno;
    if (ioctl(fd, SPI_IOC_RD_BITS_PER_WORD, bits_per_word) < 0) return -errno;
    if (ioctl(fd, SPI_IOC_RD_MAX_SPEED_HZ, speed_hz) < 0) return -errno;
    return 0;
}

int hs_spi_fill_transfers(const hs_spi_segment *segments, uint32_t count, void *out, size_t out_size) {
    if (count == 0 || count > HS_SPI_MAX_SEGMENTS) return -EINVAL;
    if (out_size < (size_t)count * sizeof(struct spi_ioc_transfer)) return -EINVAL;
    struct spi_ioc_transfer *xfers = out;
    memset(xfers, 0, (size_t)count * sizeof(*xfers));
    for (uint32_t i = 0; i < count; i++) {
        /* Through uintptr_t: a 32-bit pointer widens to __u64 without sign extension. */
        xfers[i].tx_buf = (__u64)(uintptr_t)segments[i].tx;
        xfers[i].rx_buf = (__u64)(uintptr_t)segments[i].rx;
        xfers[i].len = segments[i].length;
        xfers[i].speed_hz = segments[i].speed_hz;
        xfers[i].delay_usecs = segments[i].delay_usecs;
        xfers[i].bits_per_word = segments[i].bits_per_word;
        xfers[i].cs_change = segments[i].cs_change;
    }
    return 0;
}

int hs_spi_transfer(int fd, const hs_spi_segment *segments, uint32_t count) {
    if (count == 0 || count > HS_SPI_MAX_SEGMENTS) return -EINVAL;
    struct spi_ioc_transfer stack[8];
    struct spi_ioc_transfer *xfers = stack;
    size_t size = (size_t)count * sizeof(struct spi_ioc_transfer);
    if (count > 8) {
        xfers = malloc(size);
        if (xfers == NULL) return -ENOMEM;
    }
    int result = hs_spi_fill_transfers(segments, count, xfers, size);
    if (result == 0 && ioctl(fd, SPI_IOC_MESSAGE(count), xfers) < 0) result = -errno;
    if (xfers != stack) free(xfers);
    return result;
}

void hs_spi_close(int fd) {
    if (fd >= 0) close(fd);
}

hs_spi_ioc_layout hs_spi_ioc_transfer_layout(void) {
    hs_spi_ioc_layout layout = {
        .size = sizeof(struct spi_ioc_transfer),
        .tx_buf = offsetof(struct spi_ioc_transfer, tx_buf),
        .rx_buf = offsetof(struct spi_ioc_transfer, rx_buf),
        .len = offsetof(struct spi_ioc_transfer, len),
        .speed_hz = offsetof(struct spi_ioc_transfer, speed_hz),
        .delay_usecs = offsetof(struct spi_ioc_transfer, delay_usecs),
        .bits_per_word = offsetof(struct spi_ioc_transfer, bits_per_word),
        .cs_change = offsetof(struct spi_ioc_transfer, cs_change),
        .tx_nbits = offsetof(struct spi_ioc_transfer, tx_nbits),
        .rx_nbits = offsetof(struct spi_ioc_transfer, rx_nbits),
        .tx_buf_width = sizeof(((struct spi_ioc_transfer *)0)->tx_buf),
    };
    return layout;
}

unsigned long hs_spi_ioc_message_request(uint32_t count) {
    return (unsigned long)SPI_IOC_MESSAGE(count);
}
