################################################################################
#
# myevent-source
#
################################################################################

# The module source lives in this tree: Buildroot rsyncs it into its build
# directory (version "custom"; no download, no hash, no patches).
MYEVENT_SOURCE_SITE = $(BR2_EXTERNAL_FWGEN_PATH)/package/myevent-source/src
MYEVENT_SOURCE_SITE_METHOD = local
MYEVENT_SOURCE_LICENSE = GPL-2.0

# Built against the kernel of this build (make -C <linux> M=<src> modules,
# reading the obj-m line of src/Makefile; the kernel must carry the
# mykthread patches, which add <linux/myevent.h> and myevent_notify()) and
# installed into /lib/modules/<release>/extra/; depmod runs in
# target-finalize.
$(eval $(kernel-module))
$(eval $(generic-package))
