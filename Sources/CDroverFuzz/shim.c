/* Nothing to compile: CDroverFuzz only declares libFuzzer's driver (include/CDroverFuzz.h). */
