################################################################################
#
# usermodehelper-demo
#
################################################################################

# The module source lives in this tree: Buildroot rsyncs it into its build
# directory (version "custom"; no download, no hash, no patches).
USERMODEHELPER_DEMO_SITE = $(BR2_EXTERNAL_FWGEN_PATH)/package/usermodehelper-demo/src
USERMODEHELPER_DEMO_SITE_METHOD = local
USERMODEHELPER_DEMO_LICENSE = GPL-2.0

# Built against the kernel of this build (make -C <linux> M=<src> modules,
# reading the obj-m line of src/Makefile) and installed into
# /lib/modules/<release>/extra/; depmod runs in target-finalize.
$(eval $(kernel-module))
$(eval $(generic-package))
