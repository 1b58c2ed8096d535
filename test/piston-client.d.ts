declare module 'piston-client';
