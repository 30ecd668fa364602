# Every package of fwgen's external tree: package/<name>/<name>.mk.
include $(sort $(wildcard $(BR2_EXTERNAL_FWGEN_PATH)/package/*/*.mk))
