// SPDX-License-Identifier: GPL-2.0
/*
 * usermodehelper_demo: run a user-space program from a kernel module.
 *
 * Loading the module creates /proc/sys/umode_helper (0644, 256 bytes).
 * Write the path of a program there; when the module is unloaded it runs
 * that program, waits for it to finish, and passes it the environment
 *
 *   HOME=/
 *   PATH=/sbin:/bin:/usr/sbin:/usr/bin
 *   TEST_VARIABLE=hello
 *
 * With nothing written there, unloading runs nothing and says so.
 *
 * Adapted from the demo module of the seed document by longyu
 * ("创建内核线程并通过内核线程调用用户态程序").  Builds against linux-4.0
 * and linux 6.1.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/kmod.h>
#include <linux/module.h>
#include <linux/sysctl.h>

#define CMD_LENGTH 256

static char cmd_str[CMD_LENGTH];

static struct ctl_table_header *ctl_table_header;

static struct ctl_table ctl_table[] = {
	{
		.procname	= "umode_helper",
		.data		= cmd_str,
		.maxlen		= sizeof(cmd_str),
		.mode		= 0644,
		.proc_handler	= proc_dostring,
	},
	{ }
};

static int run_umode_handler_example(void)
{
	char *argv[] = { cmd_str, NULL };
	/* minimal command environment */
	char *envp[] = {
		"HOME=/",
		"PATH=/sbin:/bin:/usr/sbin:/usr/bin",
		"TEST_VARIABLE=hello",
		NULL
	};
	int ret;

	if (!cmd_str[0]) {
		pr_info("/proc/sys/umode_helper is empty, nothing to run\n");
		return 0;
	}

	pr_info("running %s\n", cmd_str);
	/* Wait for the program to finish; its exit status comes back. */
	ret = call_usermodehelper(cmd_str, argv, envp, UMH_WAIT_PROC);
	if (ret < 0)
		pr_err("cannot run %s: %d\n", cmd_str, ret);
	else if (ret)
		pr_warn("%s exited with wait status %d\n", cmd_str, ret);
	return ret;
}

static int __init umode_handler_demo_init(void)
{
	/* "" is the root of /proc/sys: the file is /proc/sys/umode_helper. */
	ctl_table_header = register_sysctl("", ctl_table);
	if (!ctl_table_header) {
		pr_err("cannot register /proc/sys/umode_helper\n");
		return -ENOMEM;
	}

	return 0;
}

static void __exit umode_handler_demo_exit(void)
{
	/*
	 * Remove the sysctl first: nobody can rewrite cmd_str any more while
	 * the program is being started from it.
	 */
	unregister_sysctl_table(ctl_table_header);
	run_umode_handler_example();
}

module_init(umode_handler_demo_init);
module_exit(umode_handler_demo_exit);

MODULE_DESCRIPTION("usermode helper demo: runs /proc/sys/umode_helper on unload");
MODULE_AUTHOR("longyu");
MODULE_LICENSE("GPL");
