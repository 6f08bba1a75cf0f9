#ifndef TERN_CCHECKSUM_H
#define TERN_CCHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/// CRC-32C (Castagnoli) of `length` bytes, continuing from `crc` (0 to start).
/// Uses the CPU's CRC32 instruction when present, a slicing-by-8 table otherwise.
uint32_t tern_crc32c_update(uint32_t crc, const void *bytes, size_t length);

/// The table implementation alone, so tests can compare the two paths.
uint32_t tern_crc32c_update_portable(uint32_t crc, const void *bytes, size_t length);

/// 1 when the hardware path is in use.
int tern_crc32c_hardware_available(void);

#endif
