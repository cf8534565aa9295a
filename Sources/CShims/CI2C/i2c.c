#include "hotspotd_i2c.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/i2c.h>
#include <linux/i2c-dev.h>
#include <stddef.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <unistd.h>

int hs_i2c_open(const char *path) {
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return -errno;
    unsigned long funcs = 0;
    if (ioctl(fd, I2C_FUNCS, &funcs) < 0) {
        int code = errno;
        close(fd);
        return -code;
    }
    return fd;
}

int hs_i2c_supports_combined(int fd) {
    unsigned long funcs = 0;
    if (ioctl(fd, I2C_FUNCS, &funcs) < 0) return -errno;
    return (funcs & I2C_FUNC_I2C) != 0;
}

int hs_i2c_configure(int fd, uint32_t timeout_ms, uint32_t retries) {
    unsigned long tens = (timeout_ms + 9) / 10;
    if (ioctl(fd, I2C_TIMEOUT, tens) < 0) return -errno;
    if (ioctl(fd, I2C_RETRIES, (unsigned long)retries) < 0) return -errno;
    return 0;
}

int hs_i2c_select(int fd, uint16_t address) {
    return ioctl(fd, I2C_SLAVE, (unsigned long)address) < 0 ? -errno : 0;
}

int hs_i2c_write(int fd, const uint8_t *bytes, size_t length) {
    ssize_t written = write(fd, bytes, length);
    if (written < 0) return -errno;
    return (size_t)written == length ? 0 : -EIO;
}

int hs_i2c_read(int fd, uint8_t *bytes, size_t length) {
    ssize_t count = read(fd, bytes, length);
    if (count < 0) return -errno;
    return (size_t)count == length ? 0 : -EIO;
}

int hs_i2c_fill_messages(const hs_i2c_message *messages, uint32_t count, void *out, size_t out_size) {
    if (count == 0 || count > HS_I2C_MAX_MESSAGES) return -EINVAL;
    if (out_size < (size_t)count * sizeof(struct i2c_msg)) return -EINVAL;
    struct i2c_msg *msgs = out;
    memset(msgs, 0, (size_t)count * sizeof(*msgs));
    for (uint32_t i = 0; i < count; i++) {
        msgs[i].addr = messages[i].address;
        msgs[i].flags = messages[i].read ? I2C_M_RD : 0;
        msgs[i].len = messages[i].length;
        msgs[i].buf = messages[i].buffer;
    }
    return 0;
}

int hs_i2c_transfer(int fd, const hs_i2c_message *messages, uint32_t count) {
    struct i2c_msg msgs[HS_I2C_MAX_MESSAGES];
    int filled = hs_i2c_fill_messages(messages, count, msgs, sizeof(msgs));
    if (filled != 0) return filled;
    struct i2c_rdwr_ioctl_data data = { .msgs = msgs, .nmsgs = count };
    int result = ioctl(fd, I2C_RDWR, &data);
    if (result < 0) return -errno;
    return (uint32_t)result == count ? 0 : -EIO;
}

int hs_i2c_lock(int fd, int exclusive) {
    int result;
    do {
        result = flock(fd, exclusive ? LOCK_EX : LOCK_UN);
    } while (result < 0 && errno == EINTR);
    return result < 0 ? -errno : 0;
}

void hs_i2c_close(int fd) {
    if (fd >= 0) close(fd);
}

hs_i2c_layout hs_i2c_struct_layout(void) {
    hs_i2c_layout layout = {
        .msg_size = sizeof(struct i2c_msg),
        .addr = offsetof(struct i2c_msg, addr),
        .flags = offsetof(struct i2c_msg, flags),
        .len = offsetof(struct i2c_msg, len),
        .buf = offsetof(struct i2c_msg, buf),
        .rdwr_size = sizeof(struct i2c_rdwr_ioctl_data),
        .rdwr_msgs = offsetof(struct i2c_rdwr_ioctl_data, msgs),
        .rdwr_nmsgs = offsetof(struct i2c_rdwr_ioctl_data, nmsgs),
        .rdwr_request = I2C_RDWR,
        .slave_request = I2C_SLAVE,
        .timeout_request = I2C_TIMEOUT,
        .read_flag = I2C_M_RD,
    };
    return layout;
}
