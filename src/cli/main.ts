// bin/brig: a thin CLI over the library, one file per verb (crun's layout).
import { OptionsError, ProfileError, SetupError } from '../errors.js';
import { UsageError } from './args.js';
import { EXIT_BRIG_ERROR, runCommand, runHelp } from './run.js';
import { seccompCommand, seccompHelp } from './seccomp.js';
import { doctorCommand, doctorHelp } from './doctor.js';
import { boxCommand, boxHelp } from './box.js';
import { profileCommand, profileHelp } from './profile.js';
import { volumeCommand, volumeHelp } from './volume.js';
import { buildCommand, buildHelp, loadCommand, loadHelp, saveCommand, saveHelp, imagesCommand, imagesHelp, importCommand, importHelp, rmiCommand, rmiHelp, tagCommand, tagHelp } from './image.js';
import { containerVerbs } from './container.js';
import { SeccompPolicyError } from '../seccomp/index.js';
import { loginCommand, loginHelp, logoutCommand, logoutHelp, pullCommand, pullHelp, pushCommand, pushHelp } from './registry.js';

const verbs: Record<string, { summary: string; main: (argv: string[]) => Promise<number>; help: string }> = {
  run: { summary: 'run a command in a new sandbox', main: runCommand, help: runHelp },
  seccomp: { summary: 'dump, test or learn syscall policies', main: seccompCommand, help: seccompHelp },
  profile: { summary: 'list, show and check policy profiles', main: profileCommand, help: profileHelp },
  images: { summary: 'list the images in your store', main: imagesCommand, help: imagesHelp },
  'import-rootfs': { summary: 'make a base image from a directory or tarball', main: importCommand, help: importHelp },
  tag: { summary: 'give an image another name', main: tagCommand, help: tagHelp },
  rmi: { summary: 'remove images (and layers nothing else uses)', main: rmiCommand, help: rmiHelp },
  build: { summary: 'build an image from a Dockerfile', main: buildCommand, help: buildHelp },
  save: { summary: 'write images as an OCI image layout (dir or tar)', main: saveCommand, help: saveHelp },
  load: { summary: 'load an OCI image layout or docker save archive', main: loadCommand, help: loadHelp },
  pull: { summary: 'pull an image from a registry', main: pullCommand, help: pullHelp },
  push: { summary: 'push an image to a registry', main: pushCommand, help: pushHelp },
  login: { summary: 'store credentials for a registry', main: loginCommand, help: loginHelp },
  logout: { summary: 'remove stored credentials for a registry', main: logoutCommand, help: logoutHelp },
  volume: { summary: 'named volumes: create, ls, inspect, rm', main: volumeCommand, help: volumeHelp },
  box: { summary: 'persistent boxes: create, run in, remove', main: boxCommand, help: boxHelp },
  doctor: { summary: 'check what this host gives a rootless user', main: doctorCommand, help: doctorHelp },
  // Containers (src/cli/container.ts): ps, rm, inspect and commit there replace the kept-container verbs of image.ts.
  ...containerVerbs,
};

const mainHelp = `Usage: brig COMMAND [OPTIONS]

brig: a rootless container sandbox for untrusted code.

Commands:
${Object.entries(verbs)
  .map(([name, v]) => `  ${name.padEnd(14)}${v.summary}`)
  .join('\n')}

Run 'brig COMMAND --help' for a command's options.
`;

export async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === '--help' || verb === '-h' || verb === 'help') {
    if (verb === 'help' && rest[0] && verbs[rest[0]]) process.stdout.write(verbs[rest[0]].help);
    else process.stdout.write(mainHelp);
    return verb === undefined ? 2 : 0;
  }
  if (verb === '--version') {
    process.stdout.write('brig 0.1.0\n');
    return 0;
  }
  const v = verbs[verb];
  if (!v) {
    process.stderr.write(`brig: unknown command ${JSON.stringify(verb)}\n\n${mainHelp}`);
    return 2;
  }
  try {
    return await v.main(rest);
  } catch (e) {
    if (e instanceof UsageError || e instanceof OptionsError || e instanceof ProfileError || e instanceof SetupError || e instanceof SeccompPolicyError) {
      process.stderr.write(`brig ${verb}: ${e.message}\n`);
      return EXIT_BRIG_ERROR;
    }
    process.stderr.write(`brig ${verb}: ${(e as Error).stack ?? String(e)}\n`);
    return EXIT_BRIG_ERROR;
  }
}
