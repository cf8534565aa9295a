#ifndef HOTSPOTD_I2C_H
#define HOTSPOTD_I2C_H

#include <stddef.h>
#include <stdint.h>

/// One message of an I2C transaction: written when `read` is 0, read into `buffer` otherwise.
typedef struct hs_i2c_message {
    uint16_t address;
    uint8_t read;
    uint8_t *buffer;
    uint16_t length;
} hs_i2c_message;

/// The most messages one I2C_RDWR carries (the kernel's I2C_RDWR_IOCTL_MAX_MSGS).
#define HS_I2C_MAX_MESSAGES 42

/// Opens an i2c-dev node read-write and checks that it is an I2C adapter (I2C_FUNCS).
/// Returns the file descriptor, or -errno (-ENOTTY when the node is not an I2C adapter).
int hs_i2c_open(const char *path);

/// Whether the adapter can do combined transactions (I2C_FUNC_I2C): 1, 0, or -errno.
int hs_i2c_supports_combined(int fd);

/// Sets the adapter's transaction timeout (I2C_TIMEOUT, in units of 10 ms) and its
/// retries on arbitration loss (I2C_RETRIES). Returns 0 or -errno.
int hs_i2c_configure(int fd, uint32_t timeout_ms, uint32_t retries);

/// Selects the target address for plain read() and write() (I2C_SLAVE). Returns 0 or -errno.
int hs_i2c_select(int fd, uint16_t address);

/// Writes `length` bytes to the selected target. Returns 0 or -errno (-EIO for a short write).
int hs_i2c_write(int fd, const uint8_t *bytes, size_t length);

/// Reads `length` bytes from the selected target. Returns 0 or -errno (-EIO for a short read).
int hs_i2c_read(int fd, uint8_t *bytes, size_t length);

/// Runs `count` messages as one combined transaction with I2C_RDWR (repeated start between
/// them). Returns 0 or -errno (-EINVAL for 0 or more than HS_I2C_MAX_MESSAGES).
int hs_i2c_transfer(int fd, const hs_i2c_message *messages, uint32_t count);

/// Fills `out` (`count` kernel struct i2c_msg, `out_size` bytes) from `messages` exactly as
/// hs_i2c_transfer does before its ioctl. Returns 0 or -EINVAL.
int hs_i2c_fill_messages(const hs_i2c_message *messages, uint32_t count, void *out, size_t out_size);

/// Takes (exclusive = 1) or gives back (0) an advisory lock on the node (flock), which other
/// processes that lock the same node wait for. Returns 0 or -errno.
int hs_i2c_lock(int fd, int exclusive);

void hs_i2c_close(int fd);

/// The layout of struct i2c_msg and struct i2c_rdwr_ioctl_data as this build sees them.
typedef struct hs_i2c_layout {
    size_t msg_size;
    size_t addr;
    size_t flags;
    size_t len;
    size_t buf;
    size_t rdwr_size;
    size_t rdwr_msgs;
    size_t rdwr_nmsgs;
    unsigned long rdwr_request;
    unsigned long slave_request;
    unsigned long timeout_request;
    uint16_t read_flag;
} hs_i2c_layout;

hs_i2c_layout hs_i2c_struct_layout(void);

#endif
