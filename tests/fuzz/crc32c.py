"""CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit: what
krappy's segment and index files and Kafka's record batches carry. Shared by
the corpus generator and the Kafka capture script."""


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
