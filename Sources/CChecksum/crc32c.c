// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as Kafka's RecordBatch v2 uses it.
// The hardware path uses SSE4.2 / ARMv8 CRC instructions with three interleaved streams so the
// instruction's 3-cycle latency is hidden; the streams are joined with a zero-extension operator.
#include "CChecksum.h"
#include <string.h>

#define POLY 0x82F63B78u

static uint32_t table[8][256];

static void build_table(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = table[0][n];
        for (int k = 1; k < 8; k++) { c = table[0][c & 0xff] ^ (c >> 8); table[k][n] = c; }
    }
}

static uint32_t portable_raw(uint32_t crc, const unsigned char *p, size_t n) {
    while (n && ((uintptr_t)p & 7)) { crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8); n--; }
    while (n >= 8) {
        uint64_t word; memcpy(&word, p, 8);
        word ^= crc;
        crc = table[7][word & 0xff] ^ table[6][(word >> 8) & 0xff] ^ table[5][(word >> 16) & 0xff] ^
              table[4][(word >> 24) & 0xff] ^ table[3][(word >> 32) & 0xff] ^ table[2][(word >> 40) & 0xff] ^
              table[1][(word >> 48) & 0xff] ^ table[0][word >> 56];
        p += 8; n -= 8;
    }
    while (n--) crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

uint32_t tern_crc32c_update_portable(uint32_t crc, const void *bytes, size_t length) {
    return ~portable_raw(~crc, (const unsigned char *)bytes, length);
}

// GF(2) operator that appends `BLOCK` zero bytes to a raw (non-inverted) CRC state, as 4 byte tables.
#define BLOCK 4096
static uint32_t shift_table[4][256];

static uint32_t gf2_times(const uint32_t *matrix, uint32_t vector) {
    uint32_t sum = 0;
    for (int i = 0; vector; i++, vector >>= 1) if (vector & 1) sum ^= matrix[i];
    return sum;
}
static void gf2_square(uint32_t *square, const uint32_t *matrix) {
    for (int n = 0; n < 32; n++) square[n] = gf2_times(matrix, matrix[n]);
}
static void build_shift_table(void) {
    // Operator for one zero bit, then square up to BLOCK*8 bits (a power of two).
    uint32_t op[32], tmp[32];
    op[0] = POLY;
    for (int n = 1; n < 32; n++) op[n] = 1u << (n - 1);
    for (long bits = 1; bits < (long)BLOCK * 8; bits <<= 1) {
        gf2_square(tmp, op); memcpy(op, tmp, sizeof op);
    }
    for (int byte = 0; byte < 4; byte++)
        for (uint32_t v = 0; v < 256; v++) shift_table[byte][v] = gf2_times(op, v << (8 * byte));
}
static inline uint32_t shift_block(uint32_t crc) {
    return shift_table[0][crc & 0xff] ^ shift_table[1][(crc >> 8) & 0xff] ^
           shift_table[2][(crc >> 16) & 0xff] ^ shift_table[3][crc >> 24];
}

#if defined(__x86_64__)
#include <cpuid.h>
__attribute__((target("sse4.2")))
static uint32_t hardware_raw(uint32_t crc, const unsigned char *p, size_t n) {
    while (n && ((uintptr_t)p & 7)) { crc = __builtin_ia32_crc32qi(crc, *p++); n--; }
    while (n >= 3 * BLOCK) {
        uint64_t a = crc, b = 0, c = 0;
        const unsigned char *pa = p, *pb = p + BLOCK, *pc = p + 2 * BLOCK;
        for (size_t i = 0; i < BLOCK; i += 8) {
            uint64_t wa, wb, wc;
            memcpy(&wa, pa + i, 8); memcpy(&wb, pb + i, 8); memcpy(&wc, pc + i, 8);
            a = __builtin_ia32_crc32di(a, wa);
            b = __builtin_ia32_crc32di(b, wb);
            c = __builtin_ia32_crc32di(c, wc);
        }
        crc = shift_block(shift_block((uint32_t)a) ^ (uint32_t)b) ^ (uint32_t)c;
        p += 3 * BLOCK; n -= 3 * BLOCK;
    }
    uint64_t c64 = crc;
    while (n >= 8) { uint64_t w; memcpy(&w, p, 8); c64 = __builtin_ia32_crc32di(c64, w); p += 8; n -= 8; }
    crc = (uint32_t)c64;
    while (n--) crc = __builtin_ia32_crc32qi(crc, *p++);
    return crc;
}
static int detect(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    return (ecx & bit_SSE4_2) != 0;
}
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
static uint32_t hardware_raw(uint32_t crc, const unsigned char *p, size_t n) {
    while (n && ((uintptr_t)p & 7)) { crc = __crc32cb(crc, *p++); n--; }
    while (n >= 3 * BLOCK) {
        uint32_t a = crc, b = 0, c = 0;
        for (size_t i = 0; i < BLOCK; i += 8) {
            uint64_t wa, wb, wc;
            memcpy(&wa, p + i, 8); memcpy(&wb, p + BLOCK + i, 8); memcpy(&wc, p + 2 * BLOCK + i, 8);
            a = __crc32cd(a, wa); b = __crc32cd(b, wb); c = __crc32cd(c, wc);
        }
        crc = shift_block(shift_block(a) ^ b) ^ c;
        p += 3 * BLOCK; n -= 3 * BLOCK;
    }
    while (n >= 8) { uint64_t w; memcpy(&w, p, 8); crc = __crc32cd(crc, w); p += 8; n -= 8; }
    while (n--) crc = __crc32cb(crc, *p++);
    return crc;
}
static int detect(void) { return 1; }
#else
static uint32_t hardware_raw(uint32_t crc, const unsigned char *p, size_t n) { return portable_raw(crc, p, n); }
static int detect(void) { return 0; }
#endif

// 0 table, 1 hardware. Built once at load time, before any thread can call in.
static int mode = 0;

__attribute__((constructor))
static void initialise(void) {
    build_table();
    build_shift_table();
    mode = detect();
}

int tern_crc32c_hardware_available(void) { return mode; }

uint32_t tern_crc32c_update(uint32_t crc, const void *bytes, size_t length) {
    const unsigned char *p = (const unsigned char *)bytes;
    if (mode) return ~hardware_raw(~crc, p, length);
    return ~portable_raw(~crc, p, length);
}
